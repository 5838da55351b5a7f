//! Bulletin text: an item's fields through the site's template, fitted to a number of parts.
//!
//! Owns the template language, the treatment of item text, summary cutting, and the mapping
//! of item fields to a provider-approved template's variables. It counts with
//! [`super::segments`] and knows nothing of subscribers or gateways.
//!
//! Templates: literal text with placeholders `{title}`, `{summary}`, `{url}`,
//! `{department}`, `{category}`; `{{` and `}}` are literal braces. An unknown placeholder or
//! an unclosed brace is an error with its character offset.
//!
//! Item text is made inert, never rejected: placeholders are substituted once and the result
//! is not scanned again, so a `{` in a title stays a `{`; the board's colour markup
//! (`{red}…{/}`) is removed; line breaks and tabs become a space; other control characters
//! and the bidirectional controls U+202A–U+202E, U+2066–U+2069 (and U+200E, U+200F,
//! U+061C) are removed, so nothing in an item can reorder or hide text on a phone; and the
//! signature's brackets 【】 become 〔〕, so no item can put a second signature in a message
//! (platforms take a 【…】 at either end as the signature, and some refuse two).

use super::segments::{Segments, segment, with_signature};
use crate::layout::markup::is_bidi_control;

/// The item fields a template can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    Title,
    Summary,
    Url,
    Department,
    Category,
}

impl Field {
    pub const ALL: [Field; 5] = [
        Field::Title,
        Field::Summary,
        Field::Url,
        Field::Department,
        Field::Category,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Field::Title => "title",
            Field::Summary => "summary",
            Field::Url => "url",
            Field::Department => "department",
            Field::Category => "category",
        }
    }

    pub fn from_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// A template mistake, at a character offset of the template text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unknown placeholder `{{{name}}}` at character {offset}")]
    Unknown { name: String, offset: usize },
    #[error("`{{` at character {offset} is not closed")]
    Unclosed { offset: usize },
    #[error("`}}` at character {offset} closes nothing (write `}}}}` for a brace)")]
    StrayClose { offset: usize },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Slot(String),
}

/// A parsed template whose placeholders are all among the names it was parsed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

impl Template {
    /// Parses `source`, accepting the placeholders in `names`.
    pub fn parse(source: &str, names: &[&str]) -> Result<Template, TemplateError> {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let chars: Vec<char> = source.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            match c {
                '{' if chars.get(i + 1) == Some(&'{') => {
                    text.push('{');
                    i += 2;
                }
                '}' if chars.get(i + 1) == Some(&'}') => {
                    text.push('}');
                    i += 2;
                }
                '}' => return Err(TemplateError::StrayClose { offset: i }),
                '{' => {
                    let Some(len) = chars[i + 1..].iter().position(|&c| c == '}') else {
                        return Err(TemplateError::Unclosed { offset: i });
                    };
                    let name: String = chars[i + 1..i + 1 + len].iter().collect();
                    if !names.contains(&name.trim()) {
                        return Err(TemplateError::Unknown { name, offset: i });
                    }
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(Piece::Slot(name.trim().to_owned()));
                    i += len + 2;
                }
                _ => {
                    text.push(c);
                    i += 1;
                }
            }
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(Template { pieces })
    }

    /// A free-text bulletin template over the item fields.
    pub fn for_fields(source: &str) -> Result<Template, TemplateError> {
        let names: Vec<&str> = Field::ALL.iter().map(|f| f.name()).collect();
        Template::parse(source, &names)
    }

    /// Whether the template uses placeholder `name`.
    pub fn uses(&self, name: &str) -> bool {
        self.pieces
            .iter()
            .any(|p| matches!(p, Piece::Slot(n) if n == name))
    }

    /// The text with each placeholder replaced by `value(name)`, in one pass.
    pub fn render(&self, value: impl Fn(&str) -> String) -> String {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Slot(name) => out.push_str(&value(name)),
            }
        }
        out
    }
}

/// The default free-text template.
pub const DEFAULT_TEMPLATE: &str = "{title}：{summary}";
/// The default template when the site says where to read more.
pub const DEFAULT_TEMPLATE_WITH_URL: &str = "{title}：{summary}详见{url}";
/// The opt-out hint that ends every free-text bulletin.
pub const OPT_OUT: &str = "回复TD退订";
/// What a cut summary ends with.
const ELLIPSIS: char = '…';

/// Item text made safe for a bulletin (see the module documentation).
pub fn clean(text: &str) -> String {
    let plain = match crate::layout::markup::parse(text) {
        Ok(styled) => styled.text,
        Err(_) => text.to_owned(),
    };
    let mut out = String::with_capacity(plain.len());
    for c in plain.chars() {
        if matches!(c, '\n' | '\r' | '\t') {
            if !out.ends_with(' ') && !out.is_empty() {
                out.push(' ');
            }
        } else if c.is_control() || is_bidi_control(c) {
            continue;
        } else if c == '【' {
            out.push('〔');
        } else if c == '】' {
            out.push('〕');
        } else {
            out.push(c);
        }
    }
    out.trim().to_owned()
}

/// The item fields, as written in the playlist (cleaned here).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields {
    pub title: String,
    /// The item's body; the summary is cut from it.
    pub body: String,
    pub url: String,
    pub department: String,
    pub category: String,
}

impl Fields {
    fn get(&self, field: Field, summary: &str) -> String {
        match field {
            Field::Title => clean(&self.title),
            Field::Summary => summary.to_owned(),
            Field::Url => clean(&self.url),
            Field::Department => clean(&self.department),
            Field::Category => clean(&self.category),
        }
    }
}

/// How a site writes free-text bulletins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Style {
    pub signature: String,
    pub template: Template,
    /// Appended after the template's text; empty for none.
    pub opt_out: String,
    /// The summary is cut so that the bulletin fits in this many parts.
    pub target_parts: usize,
}

/// A rendered bulletin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bulletin {
    /// What the phone shows, 【signature】 included.
    pub text: String,
    /// The text without the 【signature】, for gateways that add it themselves.
    pub body: String,
    pub segments: Segments,
    /// The summary had to be cut.
    pub cut: bool,
    /// Even with an empty summary the bulletin needs more parts than the target.
    pub over_target: bool,
}

fn cut(summary: &str, keep: usize) -> String {
    let total = summary.chars().count();
    if keep >= total {
        return summary.to_owned();
    }
    if keep == 0 {
        return String::new();
    }
    let mut out: String = summary.chars().take(keep - 1).collect();
    out.push(ELLIPSIS);
    out
}

/// Renders a free-text bulletin, cutting the summary at a character boundary (never inside a
/// surrogate pair: Rust characters are whole code points) until it fits `target_parts`.
pub fn render(style: &Style, fields: &Fields) -> Bulletin {
    let summary = clean(&fields.body);
    let build = |summary: &str| {
        let mut body = style.template.render(|name| {
            Field::from_name(name).map_or_else(String::new, |f| fields.get(f, summary))
        });
        body.push_str(&style.opt_out);
        let text = with_signature(&style.signature, &body);
        let segments = segment(&text);
        (body, text, segments)
    };
    let total = summary.chars().count();
    let (body, text, segments) = build(&summary);
    if segments.parts <= style.target_parts {
        return Bulletin {
            text,
            body,
            segments,
            cut: false,
            over_target: false,
        };
    }
    // The number of parts grows with the summary's length: find the longest that fits.
    let (mut lo, mut hi) = (0usize, total);
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if build(&cut(&summary, mid)).2.parts <= style.target_parts {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    let (body, text, segments) = build(&cut(&summary, lo));
    let over_target = segments.parts > style.target_parts;
    Bulletin {
        text,
        body,
        segments,
        cut: true,
        over_target,
    }
}

/// One variable of a provider-approved template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateVar {
    /// The variable's name in the approved template (`title`, or `1` for Tencent).
    pub name: String,
    pub field: Field,
    /// Most characters the provider accepts in this variable.
    pub max: usize,
}

/// A value longer than its variable allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("variable `{name}` would be {len} characters, at most {max} allowed")]
pub struct CapError {
    pub name: String,
    pub len: usize,
    pub max: usize,
}

/// The approved template's variables filled from an item. A summary is cut to its cap (it is
/// a summary); any other field too long is an error, since a cut title or link misleads.
pub fn template_params(
    vars: &[TemplateVar],
    fields: &Fields,
) -> Result<Vec<(String, String)>, CapError> {
    let summary = clean(&fields.body);
    vars.iter()
        .map(|var| {
            let value = match var.field {
                Field::Summary => cut(&summary, var.max),
                other => fields.get(other, &summary),
            };
            let len = value.chars().count();
            if len > var.max {
                return Err(CapError {
                    name: var.name.clone(),
                    len,
                    max: var.max,
                });
            }
            Ok((var.name.clone(), value))
        })
        .collect()
}

/// The text an approved template produces, for counting parts (`approved` uses the variable
/// names as placeholders, e.g. `{title}已发布，详见{url}`).
pub fn template_text(
    signature: &str,
    approved: &Template,
    params: &[(String, String)],
) -> (String, Segments) {
    let body = approved.render(|name| {
        params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    });
    let text = with_signature(signature, &body);
    let segments = segment(&text);
    (text, segments)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn style(template: &str, parts: usize) -> Style {
        Style {
            signature: "大余县政务公开".into(),
            template: Template::for_fields(template).unwrap(),
            opt_out: OPT_OUT.into(),
            target_parts: parts,
        }
    }

    fn fields(body: &str) -> Fields {
        Fields {
            title: "城区道路照明改造工程中标结果公示".into(),
            body: body.into(),
            url: "dayu.gov.cn".into(),
            department: "县财政局".into(),
            category: "政府采购".into(),
        }
    }

    #[test]
    fn a_short_bulletin_is_signature_title_summary_link_and_opt_out() {
        let b = render(
            &style(DEFAULT_TEMPLATE_WITH_URL, 2),
            &fields("中标金额123万元。"),
        );
        assert_eq!(
            b.text,
            "【大余县政务公开】城区道路照明改造工程中标结果公示：中标金额123万元。详见dayu.gov.cn回复TD退订"
        );
        assert!(!b.cut);
        assert_eq!(b.segments.parts, 1);
        assert_eq!(b.body, b.text.trim_start_matches("【大余县政务公开】"));
    }

    #[test]
    fn a_long_summary_is_cut_to_fit_the_target_parts() {
        let body = "公".repeat(300);
        for target in [1, 2, 3] {
            let b = render(&style(DEFAULT_TEMPLATE_WITH_URL, target), &fields(&body));
            assert!(b.cut);
            assert_eq!(b.segments.parts, target, "{}", b.text);
            assert!(b.text.contains('…'));
            // One more character would not fit.
            let longer = b.segments.chars + 1;
            let limit = if target == 1 { 70 } else { 67 * target };
            assert!(longer > limit);
        }
    }

    #[test]
    fn an_emoji_in_the_summary_is_never_cut_in_half() {
        let body = "😀".repeat(100);
        let b = render(&style("{summary}", 1), &fields(&body));
        assert!(b.text.chars().all(|c| c != '\u{FFFD}'));
        assert_eq!(b.segments.parts, 1);
    }

    #[test]
    fn unknown_placeholders_and_unclosed_braces_are_errors() {
        assert_eq!(
            Template::for_fields("{title}{tilte}"),
            Err(TemplateError::Unknown {
                name: "tilte".into(),
                offset: 7
            })
        );
        assert_eq!(
            Template::for_fields("{title"),
            Err(TemplateError::Unclosed { offset: 0 })
        );
        assert!(matches!(
            Template::for_fields("a}b"),
            Err(TemplateError::StrayClose { offset: 1 })
        ));
        assert!(Template::for_fields("{{literal}} {title}").is_ok());
    }

    #[test]
    fn item_text_is_rendered_inertly() {
        let mut f = fields("正文{summary}\u{202E}反转\u{2066}隔离\u{7}响铃\n换行");
        f.title = "{red}标题{/}".into();
        let b = render(&style("{title}|{summary}", 3), &f);
        // Colour markup of the board is dropped; text that is not markup (`{summary}`) stays
        // as written and is not substituted; controls are removed.
        assert_eq!(
            b.text,
            "【大余县政务公开】标题|正文{summary}反转隔离响铃 换行回复TD退订"
        );
    }

    #[test]
    fn an_item_cannot_add_a_signature_nor_fill_a_placeholder() {
        let mut f = fields("见【大余县人民政府】{{signature}{{title}");
        f.title = "【假冒单位】通知".into();
        let b = render(&style("{title}：{summary}", 3), &f);
        assert_eq!(
            b.text,
            "【大余县政务公开】〔假冒单位〕通知：见〔大余县人民政府〕{signature}{title}回复TD退订"
        );
        assert_eq!(b.text.matches('【').count(), 1);
        assert_eq!(b.text.matches('】').count(), 1);
    }

    #[test]
    fn template_variables_respect_their_caps() {
        let vars = vec![
            TemplateVar {
                name: "title".into(),
                field: Field::Title,
                max: 20,
            },
            TemplateVar {
                name: "summary".into(),
                field: Field::Summary,
                max: 10,
            },
        ];
        let params = template_params(&vars, &fields(&"公".repeat(30))).unwrap();
        assert_eq!(params[1].1.chars().count(), 10);
        assert!(params[1].1.ends_with('…'));
        let mut short = vars.clone();
        short[0].max = 5;
        assert_eq!(
            template_params(&short, &fields("x")),
            Err(CapError {
                name: "title".into(),
                len: 16,
                max: 5
            })
        );
        let approved = Template::parse("{title}已发布：{summary}", &["title", "summary"]).unwrap();
        let (text, segs) = template_text("大余县政务公开", &approved, &params);
        assert!(text.starts_with("【大余县政务公开】城区道路"));
        assert_eq!(segs.parts, 1);
    }
}
