"""Web plumbing both daemons share (not wire protocol): error shape, body limits, TLS serving."""
