//! What every sst1mflow crate shares and nothing else: the one error type (a message naming the
//! file or thing at fault), the helpers that suggest the name a user probably meant, and the
//! strict reader of the JSON files users write.
pub mod error;
pub mod json;
pub mod text;
