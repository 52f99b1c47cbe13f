//! Wire-format tests of the Anthropic client (filled in by the Anthropic work).
