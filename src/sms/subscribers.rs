//! Subscribers: who gets which bulletin. CSV import, number checks, opt-outs, masking, selection.
//!
//! Owns the subscriber list as data. It does not store it (the ledger does) and does not send.
//! Numbers are personal information: anything shown to an operator goes through [`mask`].
//!
//! CSV columns, found by their header (English or Chinese): `number`/`号码`,
//! `name`/`姓名`, `groups`/`分组` (e.g. `南安镇;新华村`), `topics`/`订阅` (disclosure
//! categories by their Chinese names, e.g. `政府采购;人员录用`). Lists are separated by `;`,
//! `；`, `,` inside the cell, or `、`. An empty `groups` cell means the subscriber gets only
//! site-wide bulletins; an empty `topics` cell means every category.
//!
//! Consent (optional columns): `consent`/`同意方式` says how the subscriber agreed (窗口登记,
//! 网上申请, …) — or, with `退订`/`opt-out`, that they withdrew — and `consent_at`/`同意时间`
//! when (`2026-11-01`, `2026-11-01 09:30`, site time). The import only reads them; the ledger
//! keeps the history.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use crate::config::raw::Category;

/// One subscriber after import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscriber {
    /// Normalised: 11 digits, no prefix.
    pub number: String,
    pub name: String,
    pub groups: BTreeSet<String>,
    /// Empty: every category.
    pub topics: BTreeSet<Category>,
}

/// Why a number is not a mainland mobile number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    #[error("not 11 digits")]
    Length,
    #[error("contains something other than digits, spaces, dashes and a +86 / 0086 prefix")]
    Characters,
    #[error("not a mainland mobile segment in use")]
    Segment,
}

/// Mobile segments in use (three-digit prefixes), as listed in `reference/sms-gateways.md`.
/// Data-only and IoT segments (140–144, 146, 148, 174, 194) cannot receive bulletins.
fn segment_in_use(prefix: u32) -> bool {
    matches!(prefix,
        130..=139
        | 145 | 147 | 149
        | 150..=153 | 155..=159
        | 162 | 165 | 166 | 167
        | 170..=173 | 175..=178
        | 180..=189
        | 190..=193 | 195..=199)
}

/// Normalises a mainland mobile number: strips spaces, dashes, `+86`, `0086` (and `86` before
/// 11 digits), then checks length and segment.
pub fn normalize(raw: &str) -> Result<String, NumberError> {
    let compact: String = raw
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '\u{3000}' | '\t' | '(' | ')'))
        .collect();
    let digits = compact
        .strip_prefix("+86")
        .or_else(|| compact.strip_prefix("0086"))
        .unwrap_or(&compact);
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(NumberError::Characters);
    }
    let digits = if digits.len() == 13 && digits.starts_with("86") {
        &digits[2..]
    } else {
        digits
    };
    if digits.len() != 11 {
        return Err(NumberError::Length);
    }
    let prefix: u32 = digits[..3].parse().map_err(|_| NumberError::Characters)?;
    if !segment_in_use(prefix) {
        return Err(NumberError::Segment);
    }
    Ok(digits.to_owned())
}

/// A number as operators see it: `138****8000`. Anything that is not 11 characters is
/// masked whole.
pub fn mask(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    if chars.len() != 11 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[7..].iter().collect();
    format!("{head}****{tail}")
}

/// A row that was not imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// 1-based line in the file.
    pub line: u64,
    pub reason: RowReason,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowReason {
    #[error("number: {0}")]
    Number(NumberError),
    #[error("no number")]
    NoNumber,
    #[error("unknown topic `{0}`")]
    UnknownTopic(String),
    #[error("unreadable CSV: {0}")]
    Csv(String),
    #[error("`{0}` is not a date or time of consent")]
    ConsentTime(String),
}

impl RowReason {
    /// Catalogue key for the operator's message.
    pub fn key(&self) -> &'static str {
        match self {
            RowReason::Number(NumberError::Length) => "sms.import.number_length",
            RowReason::Number(NumberError::Characters) => "sms.import.number_characters",
            RowReason::Number(NumberError::Segment) => "sms.import.number_segment",
            RowReason::NoNumber => "sms.import.no_number",
            RowReason::UnknownTopic(_) => "sms.import.unknown_topic",
            RowReason::Csv(_) => "sms.import.csv",
            RowReason::ConsentTime(_) => "sms.import.consent_time",
        }
    }
}

/// The whole file cannot be imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    #[error("no `number` (号码) column in the header")]
    NoNumberColumn,
    #[error("unreadable CSV header: {0}")]
    Header(String),
}

/// What an import produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Import {
    /// By number, duplicates merged (groups and topics united, the first name kept).
    pub subscribers: BTreeMap<String, Subscriber>,
    pub errors: Vec<RowError>,
    /// Rows skipped because the number opted out.
    pub opted_out: usize,
    /// Rows merged into an earlier row with the same number.
    pub merged: usize,
    /// By number: how and when the subscriber consented, as the file says (the last row with
    /// a consent cell wins). Numbers without: nothing said.
    pub consents: BTreeMap<String, ConsentCell>,
    /// Numbers whose row says they withdrew consent: opted out by this import, never stored
    /// as subscribers (a withdrawal wins over an opt-in elsewhere in the file).
    pub withdrawn: BTreeSet<String>,
}

/// What a row's consent columns say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsentCell {
    /// How (窗口登记, 网上申请, …); `None`: the column is absent or empty.
    pub how: Option<String>,
    /// When, in site time; `None`: absent or empty.
    pub at: Option<chrono::NaiveDateTime>,
}

/// Whether a consent cell withdraws consent.
fn is_withdrawal(cell: &str) -> bool {
    let t = cell.trim().to_lowercase();
    matches!(
        t.as_str(),
        "退订" | "拒绝" | "不同意" | "撤回" | "td" | "opt-out" | "optout" | "opt out" | "no"
    )
}

/// A time of consent as clerks write it: a date, or a date and a time.
fn consent_time(cell: &str) -> Option<chrono::NaiveDateTime> {
    let t = cell.trim().replace('/', "-");
    for format in [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(at) = chrono::NaiveDateTime::parse_from_str(&t, format) {
            return Some(at);
        }
    }
    for format in ["%Y-%m-%d", "%Y年%m月%d日"] {
        if let Ok(day) = chrono::NaiveDate::parse_from_str(&t, format) {
            return Some(day.and_time(chrono::NaiveTime::MIN));
        }
    }
    None
}

/// Numbers that replied TD (or were removed by the operator). Kept forever: an opt-out wins
/// over every later import.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OptOuts(HashSet<String>);

impl OptOuts {
    pub fn new() -> OptOuts {
        OptOuts::default()
    }

    /// Records an opt-out; the number is normalised first, so `+86 138-0013-8000` counts.
    pub fn add(&mut self, number: &str) -> Result<(), NumberError> {
        self.0.insert(normalize(number)?);
        Ok(())
    }

    pub fn contains(&self, normalized: &str) -> bool {
        self.0.contains(normalized)
    }
}

fn column(headers: &csv::StringRecord, names: &[&str]) -> Option<usize> {
    headers
        .iter()
        .position(|h| names.iter().any(|n| h.trim().eq_ignore_ascii_case(n)))
}

fn split_list(cell: &str) -> impl Iterator<Item = &str> {
    cell.split([';', '；', ',', '，', '、'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The English names the site files also accept, in the order of `Category::ALL`.
const ENGLISH: [&str; 11] = [
    "licensing",
    "procurement",
    "tendering",
    "land",
    "special-funds",
    "property-rights",
    "hiring",
    "planning",
    "meeting",
    "policy",
    "other",
];

/// Parses a category name as operators write it (Chinese, or the English alias).
pub fn category(name: &str) -> Option<Category> {
    Category::ALL
        .into_iter()
        .zip(ENGLISH)
        .find(|(c, en)| c.name() == name || en.eq_ignore_ascii_case(name))
        .map(|(c, _)| c)
}

/// Imports a CSV file's text. Bad rows are reported and skipped; good rows are imported.
pub fn import(csv_text: &str, opt_outs: &OptOuts) -> Result<Import, ImportError> {
    let text = csv_text.strip_prefix('\u{feff}').unwrap_or(csv_text);
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| ImportError::Header(e.to_string()))?
        .clone();
    let number_col = column(&headers, &["number", "号码", "手机号", "手机号码"])
        .ok_or(ImportError::NoNumberColumn)?;
    let name_col = column(&headers, &["name", "姓名"]);
    let groups_col = column(&headers, &["groups", "分组"]);
    let topics_col = column(&headers, &["topics", "订阅"]);
    let consent_col = column(&headers, &["consent", "同意方式"]);
    let consent_at_col = column(&headers, &["consent_at", "同意时间"]);

    let mut out = Import::default();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                out.errors.push(RowError {
                    line,
                    reason: RowReason::Csv(e.to_string()),
                });
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        if record.iter().all(str::is_empty) {
            continue;
        }
        let cell = |col: Option<usize>| col.and_then(|c| record.get(c)).unwrap_or("");
        let raw_number = cell(Some(number_col));
        if raw_number.is_empty() {
            out.errors.push(RowError {
                line,
                reason: RowReason::NoNumber,
            });
            continue;
        }
        let number = match normalize(raw_number) {
            Ok(n) => n,
            Err(e) => {
                out.errors.push(RowError {
                    line,
                    reason: RowReason::Number(e),
                });
                continue;
            }
        };
        let mut topics = BTreeSet::new();
        let mut bad_topic = None;
        for name in split_list(cell(topics_col)) {
            match category(name) {
                Some(c) => {
                    topics.insert(c);
                }
                None => {
                    bad_topic = Some(name.to_owned());
                    break;
                }
            }
        }
        if let Some(name) = bad_topic {
            out.errors.push(RowError {
                line,
                reason: RowReason::UnknownTopic(name),
            });
            continue;
        }
        let how = cell(consent_col);
        let at_text = cell(consent_at_col);
        let at = if at_text.is_empty() {
            None
        } else {
            match consent_time(at_text) {
                Some(at) => Some(at),
                None => {
                    out.errors.push(RowError {
                        line,
                        reason: RowReason::ConsentTime(at_text.to_owned()),
                    });
                    continue;
                }
            }
        };
        if opt_outs.contains(&number) {
            out.opted_out += 1;
            continue;
        }
        if is_withdrawal(how) || out.withdrawn.contains(&number) {
            if out.subscribers.remove(&number).is_some() {
                out.consents.remove(&number);
            }
            out.withdrawn.insert(number);
            continue;
        }
        if !how.is_empty() || at.is_some() {
            out.consents.insert(
                number.clone(),
                ConsentCell {
                    how: (!how.is_empty()).then(|| how.to_owned()),
                    at,
                },
            );
        }
        let groups: BTreeSet<String> = split_list(cell(groups_col)).map(str::to_owned).collect();
        let name = cell(name_col).to_owned();
        match out.subscribers.get_mut(&number) {
            Some(existing) => {
                out.merged += 1;
                if existing.name.is_empty() {
                    existing.name = name;
                }
                existing.groups.extend(groups);
                // An empty topic list means "everything"; merging keeps the wider choice.
                if existing.topics.is_empty() || topics.is_empty() {
                    existing.topics.clear();
                } else {
                    existing.topics.extend(topics);
                }
            }
            None => {
                out.subscribers.insert(
                    number.clone(),
                    Subscriber {
                        number,
                        name,
                        groups,
                        topics,
                    },
                );
            }
        }
    }
    Ok(out)
}

impl Subscriber {
    /// Whether this subscriber gets a bulletin of `category` addressed to `groups` (empty:
    /// the whole site).
    pub fn wants(&self, category: Category, groups: &[String]) -> bool {
        let topic = self.topics.is_empty() || self.topics.contains(&category);
        let place = groups.is_empty() || groups.iter().any(|g| self.groups.contains(g));
        topic && place
    }
}

/// The subscribers who get a bulletin, in number order; opted-out numbers never.
pub fn select<'a>(
    subscribers: impl IntoIterator<Item = &'a Subscriber>,
    opt_outs: &OptOuts,
    category: Category,
    groups: &[String],
) -> Vec<&'a Subscriber> {
    let mut chosen: Vec<&Subscriber> = subscribers
        .into_iter()
        .filter(|s| !opt_outs.contains(&s.number) && s.wants(category, groups))
        .collect();
    chosen.sort_by(|a, b| a.number.cmp(&b.number));
    chosen.dedup_by(|a, b| a.number == b.number);
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_normalised() {
        for raw in [
            "13800138000",
            "+86 138 0013 8000",
            "0086-138-0013-8000",
            "8613800138000",
            "+86-13800138000",
        ] {
            assert_eq!(normalize(raw).as_deref(), Ok("13800138000"), "{raw}");
        }
    }

    #[test]
    fn current_segments_are_accepted_and_others_refused() {
        for ok in [
            "16612345678",
            "17012345678",
            "19212345678",
            "19912345678",
            "14512345678",
        ] {
            assert!(normalize(ok).is_ok(), "{ok}");
        }
        assert_eq!(normalize("15412345678"), Err(NumberError::Segment));
        assert_eq!(normalize("12012345678"), Err(NumberError::Segment));
        assert_eq!(normalize("19412345678"), Err(NumberError::Segment));
        assert_eq!(normalize("1380013800"), Err(NumberError::Length));
        assert_eq!(normalize("138001380001"), Err(NumberError::Length));
        assert_eq!(normalize("1380013800x"), Err(NumberError::Characters));
    }

    #[test]
    fn masking_keeps_three_and_four() {
        assert_eq!(mask("13800138000"), "138****8000");
        assert_eq!(mask("123"), "***");
    }

    const CSV: &str = "number,name,groups,topics
138 0013 8000,张三,南安镇;新华村,政府采购;人员录用
12345,李四,南安镇,
+86 139-0013-9000,王五,黄龙镇,
13800138000,,池江镇,行政许可
13700137000,赵六,南安镇,天气预报
";

    #[test]
    fn bad_rows_are_reported_with_line_and_good_rows_imported() {
        let import = import(CSV, &OptOuts::new()).unwrap();
        assert_eq!(import.subscribers.len(), 2);
        assert_eq!(
            import.errors,
            vec![
                RowError {
                    line: 3,
                    reason: RowReason::Number(NumberError::Length)
                },
                RowError {
                    line: 6,
                    reason: RowReason::UnknownTopic("天气预报".into())
                },
            ]
        );
    }

    #[test]
    fn duplicates_are_merged() {
        let import = import(CSV, &OptOuts::new()).unwrap();
        let s = &import.subscribers["13800138000"];
        assert_eq!(import.merged, 1);
        assert_eq!(s.name, "张三");
        assert_eq!(
            s.groups.iter().map(String::as_str).collect::<Vec<_>>(),
            ["南安镇", "新华村", "池江镇"]
        );
        assert_eq!(s.topics.len(), 3);
    }

    #[test]
    fn an_opt_out_wins_over_reimport() {
        let mut opt_outs = OptOuts::new();
        opt_outs.add("+86 139 0013 9000").unwrap();
        let import = import(CSV, &opt_outs).unwrap();
        assert!(!import.subscribers.contains_key("13900139000"));
        assert_eq!(import.opted_out, 1);
        let again = super::import(CSV, &opt_outs).unwrap();
        assert!(!again.subscribers.contains_key("13900139000"));
    }

    #[test]
    fn a_file_without_a_number_column_is_refused() {
        assert_eq!(
            import("name,groups\n张三,南安镇\n", &OptOuts::new()),
            Err(ImportError::NoNumberColumn)
        );
    }

    #[test]
    fn chinese_headers_are_understood() {
        let import = import(
            "号码,姓名,分组,订阅\n13800138000,张三,南安镇,政府采购\n",
            &OptOuts::new(),
        )
        .unwrap();
        assert_eq!(import.subscribers.len(), 1);
    }

    #[test]
    fn selection_by_topic_and_group() {
        let import = import(CSV, &OptOuts::new()).unwrap();
        let subs: Vec<Subscriber> = import.subscribers.into_values().collect();
        let none = OptOuts::new();
        let pick = |c, g: &[&str]| {
            let g: Vec<String> = g.iter().map(|s| s.to_string()).collect();
            select(&subs, &none, c, &g)
                .iter()
                .map(|s| s.number.clone())
                .collect::<Vec<_>>()
        };
        // 13900139000 has no topics: every category.
        assert_eq!(
            pick(Category::Procurement, &[]),
            ["13800138000", "13900139000"]
        );
        assert_eq!(pick(Category::Planning, &[]), ["13900139000"]);
        assert_eq!(pick(Category::Procurement, &["黄龙镇"]), ["13900139000"]);
        assert_eq!(pick(Category::Procurement, &["新华村"]), ["13800138000"]);
        let mut out = OptOuts::new();
        out.add("13800138000").unwrap();
        assert!(
            select(&subs, &out, Category::Procurement, &[])
                .iter()
                .all(|s| s.number != "13800138000")
        );
    }

    #[test]
    fn consent_columns_are_read_and_a_withdrawal_wins_in_the_file() {
        let csv = "号码,同意方式,同意时间\n\
                   13800138000,窗口登记,2026-11-01 09:30\n\
                   13900139000,,\n\
                   18612345678,网上申请,2026/11/02\n\
                   18612345678,退订,\n\
                   13700137000,窗口登记,上周\n";
        let import = import(csv, &OptOuts::new()).unwrap();
        assert_eq!(
            import.consents.get("13800138000"),
            Some(&ConsentCell {
                how: Some("窗口登记".into()),
                at: chrono::NaiveDate::from_ymd_opt(2026, 11, 1)
                    .and_then(|d| d.and_hms_opt(9, 30, 0)),
            })
        );
        assert!(!import.consents.contains_key("13900139000"));
        assert!(import.subscribers.contains_key("13900139000"));
        assert!(!import.subscribers.contains_key("18612345678"));
        assert!(!import.consents.contains_key("18612345678"));
        assert!(import.withdrawn.contains("18612345678"));
        assert_eq!(import.errors.len(), 1);
        assert_eq!(import.errors[0].line, 6);
        assert_eq!(import.errors[0].reason.key(), "sms.import.consent_time");
    }
}
