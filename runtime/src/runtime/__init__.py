"""What every service does alike at its edges: start (settings or one refusal line), log,
create topics and indexes, retry infrastructure. `contracts` stays pure vocabulary; the I/O
that uses it lives here."""
