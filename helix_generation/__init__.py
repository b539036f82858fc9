"""Cross-model text generation through a linear map (paper Section 3.2, Appendices B-C).

A source LLM reads the text, an affine map carries its last hidden state into a target LLM's
space, and the target's frozen LM head picks the next token. The package measures how well that
works: tokenizer compatibility (:mod:`.tokens`), streamed map fitting (:mod:`.fit`), stitched
greedy decoding with a key/value cache (:mod:`.decode`) and MMLU / Alpaca evaluation
(:mod:`.mmlu`, :mod:`.instruct`). ``helix-generate`` (:mod:`.cli`) drives it all.
"""
