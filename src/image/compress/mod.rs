//! Layer compression: parallel deterministic gzip, multi-threaded zstd, and a reader that
//! recognises any of them (or plain tar).
