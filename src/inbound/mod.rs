//! Client dialects: how requests are read and how answers and errors are written back.

pub mod openai;
