//! Text splitters. (Being written.)
