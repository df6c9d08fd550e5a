//! AWS Bedrock Converse / ConverseStream: SigV4-signed JSON requests, binary event-stream responses.

pub mod converse;
pub mod eventstream;
pub mod sigv4;
mod wire;
