"""Reading labelled JSONL dataset folders (`<split>.jsonl` + `labels.json`) from a configurable
directory; both silos and the demo read data this way, never from copies inside the repository."""

from .jsonl import LabelledSplit, cut_parts, dataset_path, load_split, load_texts, parse_labelled_jsonl

__all__ = ["LabelledSplit", "cut_parts", "dataset_path", "load_split", "load_texts", "parse_labelled_jsonl"]
