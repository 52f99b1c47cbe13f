//! summarize (being written).
