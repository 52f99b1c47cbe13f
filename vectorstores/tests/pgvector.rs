//! pgvector tests (being written).
