//! Operator-facing language: which one the operator reads, and looking messages up in the
//! catalogue (`locales/*.yml`).
//!
//! Every sentence an operator reads comes from the catalogue, keyed by a stable name, so that a new
//! language is one new file. Code never formats operator text itself; it passes arguments.

use std::borrow::Cow;

/// A language the catalogue carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    En,
    Zh,
}

impl Lang {
    /// The catalogue's name for this language.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh-CN",
        }
    }

    /// Parses what an operator types after `--lang`, or a POSIX locale name such as
    /// `zh_CN.UTF-8`. Anything that is not recognisably Chinese is English.
    pub fn from_tag(tag: &str) -> Option<Lang> {
        let tag = tag.trim();
        if tag.is_empty() {
            return None;
        }
        let lower = tag.to_ascii_lowercase();
        if lower.starts_with("zh") {
            Some(Lang::Zh)
        } else if lower.starts_with("en")
            || lower == "c"
            || lower.starts_with("c.")
            || lower == "posix"
        {
            Some(Lang::En)
        } else {
            None
        }
    }

    /// The language the environment asks for, in gettext's order of precedence:
    /// `LANGUAGE` (a colon-separated preference list), then `LC_ALL`, `LC_MESSAGES`, `LANG`.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Lang {
        let posix = ["LC_ALL", "LC_MESSAGES", "LANG"]
            .iter()
            .find_map(|name| get(name).filter(|v| !v.is_empty()));
        // gettext ignores LANGUAGE when the locale is "C".
        let c_locale = posix.as_deref().is_some_and(|v| v == "C" || v == "POSIX");
        if !c_locale
            && let Some(lang) =
                get("LANGUAGE").and_then(|list| list.split(':').find_map(Lang::from_tag))
        {
            return lang;
        }
        posix
            .as_deref()
            .and_then(Lang::from_tag)
            .unwrap_or_default()
    }
}

/// Looks `key` up in the catalogue for `lang` and fills its `%{name}` placeholders.
pub fn tr(lang: Lang, key: &str, args: &[(&str, &str)]) -> String {
    let text: Cow<'_, str> = crate::_rust_i18n_translate(lang.code(), key);
    if args.is_empty() {
        return text.into_owned();
    }
    let names: Vec<&str> = args.iter().map(|(name, _)| *name).collect();
    let values: Vec<String> = args.iter().map(|(_, value)| (*value).to_owned()).collect();
    rust_i18n::replace_patterns(&text, &names, &values)
}

/// Whether the catalogue has `key` for `lang` itself (not through the English fallback).
pub fn has_key(lang: Lang, key: &str) -> bool {
    crate::_rust_i18n_try_translate(lang.code(), key).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn chinese_locale_selects_chinese() {
        assert_eq!(Lang::from_env(env(&[("LANG", "zh_CN.UTF-8")])), Lang::Zh);
        assert_eq!(Lang::from_env(env(&[("LC_ALL", "zh_TW")])), Lang::Zh);
    }

    #[test]
    fn lc_all_overrides_lang() {
        assert_eq!(
            Lang::from_env(env(&[("LANG", "zh_CN.UTF-8"), ("LC_ALL", "en_US.UTF-8")])),
            Lang::En
        );
    }

    #[test]
    fn language_list_wins_unless_locale_is_c() {
        let vars = [("LANGUAGE", "fr:zh_CN"), ("LANG", "en_US.UTF-8")];
        assert_eq!(Lang::from_env(env(&vars)), Lang::Zh);
        let vars = [("LANGUAGE", "zh_CN"), ("LC_ALL", "C")];
        assert_eq!(Lang::from_env(env(&vars)), Lang::En);
    }

    #[test]
    fn nothing_set_means_english() {
        assert_eq!(Lang::from_env(env(&[])), Lang::En);
    }

    #[test]
    fn placeholders_are_filled() {
        let text = tr(Lang::En, "diag.unknown_field", &[("field", "tittle")]);
        assert!(text.contains("tittle"), "{text}");
        let text = tr(Lang::Zh, "diag.unknown_field", &[("field", "tittle")]);
        assert!(text.contains("tittle") && text.contains("字段"), "{text}");
    }
}
