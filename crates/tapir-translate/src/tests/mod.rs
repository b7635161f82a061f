//! Unit tests of the crate: parser, translation per country, toll list,
//! calling cards, options, serialization, incoming normalisation, and
//! property tests.

mod countries;
mod incoming;
mod parse;
mod props;
mod translate;
