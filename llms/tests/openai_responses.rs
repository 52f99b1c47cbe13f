//! Wire-format tests of the OpenAI Responses API client (filled in by the Responses work).
