//! The last check of a site: can every character of every item be drawn on every display it
//! goes to, and is its colour markup well-formed?
//!
//! A character the display's font lacks but a fallback font has is a warning (it will look
//! different from its neighbours); one no font has is an error (the board would show a box).
//! Each is reported once per item, character and profile (two kinds of board with different
//! fonts may disagree), at the title or body of the item, with the character's position in that
//! text (counted from 1) and the font that draws it.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use super::model::{Channel, FontRef, Model};
use crate::diag::{Diagnostic, Msg, Pos, Report};
use crate::font::{FontChain, Resolved};
use crate::layout::markup;

/// Checks glyphs and markup of every item against the fonts of its target displays.
pub fn check(model: &Model, site_dir: &Path, report: &mut Report) {
    // One chain per profile: displays of one kind share their fonts.
    let mut chains: HashMap<usize, Option<FontChain>> = HashMap::new();
    for playlist in &model.playlists {
        let target_profiles: BTreeSet<usize> = playlist
            .targets
            .iter()
            .map(|&d| model.displays[d].profile)
            .collect();
        let no_profiles = BTreeSet::new();
        for item in &playlist.items {
            // Only what goes on a screen needs glyphs; an SMS-only item is checked by SMS rules.
            let on_screen = item
                .channels
                .iter()
                .any(|c| matches!(c, Channel::Board | Channel::Touch));
            let profiles = if on_screen {
                &target_profiles
            } else {
                &no_profiles
            };
            let texts = [
                ("field.title", &item.title, Some(item.title_at)),
                ("field.body", &item.body, item.body_at),
            ];
            for (field, text, at) in texts {
                let Some(at) = at else { continue };
                let pos = Pos::new(&playlist.file, at.0, at.1, at.2);
                let styled = match markup::parse(text) {
                    Ok(styled) => styled,
                    Err(error) => {
                        report.push(
                            Diagnostic::error(
                                pos,
                                Msg::new("glyph.markup")
                                    .arg_msg("field", Msg::new(field))
                                    .arg("error", error),
                            )
                            .with_hint(Msg::new("glyph.markup.hint")),
                        );
                        continue;
                    }
                };
                for &profile_index in profiles {
                    let chain = chains.entry(profile_index).or_insert_with(|| {
                        let profile = &model.profiles[profile_index];
                        match load_chain(&profile.font, site_dir) {
                            Ok(chain) => Some(chain),
                            Err(reason) => {
                                report.push(Diagnostic::error(
                                    Pos::file(&profile.file),
                                    Msg::new("glyph.font_unusable").arg("reason", reason),
                                ));
                                None
                            }
                        }
                    });
                    let Some(chain) = chain else { continue };
                    let profile = &model.profiles[profile_index];
                    check_text(
                        &styled.text,
                        chain,
                        &pos,
                        field,
                        &item.id,
                        &profile.id,
                        report,
                    );
                }
            }
        }
    }
}

fn check_text(
    text: &str,
    chain: &mut FontChain,
    pos: &Pos,
    field: &'static str,
    item: &str,
    profile: &str,
    report: &mut Report,
) {
    let mut seen = BTreeSet::new();
    for (index, c) in text.chars().enumerate() {
        if c.is_control() || !seen.insert(c) {
            continue;
        }
        let (severity_error, font) = match chain.resolve(c) {
            Resolved::Primary | Resolved::Substituted(_) | Resolved::Blank => continue,
            Resolved::Fallback(i) => (
                false,
                chain.names().get(i).copied().unwrap_or("?").to_owned(),
            ),
            Resolved::Missing => (true, String::new()),
        };
        let message = Msg::new(if severity_error {
            "glyph.missing"
        } else {
            "glyph.fallback"
        })
        .arg("char", c)
        .arg("code", format!("U+{:04X}", u32::from(c)))
        .arg_msg("field", Msg::new(field))
        .arg("index", index + 1)
        .arg("item", item)
        .arg("profile", profile)
        .arg("font", font)
        .arg("primary", chain.names().first().copied().unwrap_or("?"));
        let pos = char_pos(pos, text, index);
        let diagnostic = if severity_error {
            Diagnostic::error(pos, message).with_hint(Msg::new("glyph.missing.hint"))
        } else {
            Diagnostic::warning(pos, message)
        };
        report.push(diagnostic);
    }
}

/// The position of character `index` of `text` when the text is written on one line exactly as
/// it reads (plain or simply quoted); otherwise the start of the field.
fn char_pos(field: &Pos, text: &str, index: usize) -> Pos {
    let count = text.chars().count() as u32;
    let quote = match field.len {
        len if len == count => 0,
        len if len == count + 2 => 1,
        _ => {
            return Pos {
                len: 0,
                ..field.clone()
            };
        }
    };
    Pos {
        col: field.col + quote + index as u32,
        len: 1,
        ..field.clone()
    }
}

/// The font chain of a profile; BDF and TTF/OTF files are read from the site's `fonts/` (a
/// scalable font at the profile's `font_size`, thresholded to 1-bit rows).
pub fn load_chain(font: &FontRef, site_dir: &Path) -> Result<FontChain, String> {
    match font {
        FontRef::Builtin(builtin) => Ok(FontChain::builtin(*builtin)),
        FontRef::File { path, size } => {
            let extension = path.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
            if extension == "ttf" || extension == "otf" {
                let Some(size) = size else {
                    return Err(format!("{path}: a .ttf or .otf font needs font_size"));
                };
                let data =
                    std::fs::read(site_dir.join(path)).map_err(|e| format!("{path}: {e}"))?;
                let font = crate::font::scalable::ScalableFont::from_vec(path.clone(), data)
                    .map_err(|e| format!("{path}: {e}"))?;
                let bitmap = crate::font::scalable::BitmapAt::new(font, *size)
                    .map_err(|e| format!("{path}: {e}"))?;
                return Ok(FontChain::new(crate::font::Primary::Scalable(bitmap)));
            }
            let text =
                std::fs::read_to_string(site_dir.join(path)).map_err(|e| format!("{path}: {e}"))?;
            let table = crate::font::bdf::parse(&text).map_err(|e| format!("{path}: {e}"))?;
            Ok(FontChain::new(crate::font::Primary::File(
                crate::font::FileFont {
                    name: path.clone(),
                    table,
                },
            )))
        }
    }
}
