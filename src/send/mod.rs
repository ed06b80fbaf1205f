//! Composing mail, independent of the provider: addresses parsed at the edge, MIME built with
//! `mail-builder`, reply/forward composition, templates and signatures. The provider adapters
//! take the finished bytes (Gmail `raw`, Graph MIME send) and the envelope recipients.

pub mod address;
pub mod compose;
pub mod mime;
pub mod request;
pub mod signature;
pub mod template;
