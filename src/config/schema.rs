//! JSON Schemas of the three file kinds, generated from the raw types so they can never drift
//! from what the loader accepts. The copies shipped in `schemas/` are what an operator's editor
//! reads (through the `# yaml-language-server: $schema=…` line at the top of each file); a test
//! fails when they differ from what this module generates.

use schemars::JsonSchema;

use super::raw::{RawPlaylist, RawProfile, RawSite};

/// File name in `schemas/` and the schema's text, for each file kind.
pub fn all() -> Vec<(&'static str, String)> {
    vec![
        ("site.schema.json", render::<RawSite>()),
        ("profile.schema.json", render::<RawProfile>()),
        ("playlist.schema.json", render::<RawPlaylist>()),
    ]
}

fn render<T: JsonSchema>() -> String {
    let schema = schemars::schema_for!(T);
    // Pretty and newline-terminated, so the shipped files diff well.
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}
