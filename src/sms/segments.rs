//! How many messages a text costs: GSM-7 or UCS-2, characters as the carriers bill them, and
//! the parts a long text is cut into.
//!
//! Owns the counting rules only; it knows nothing of items, subscribers or gateways. The text
//! passed in is the whole message as the phone shows it, 【signature】 included: Chinese
//! platforms add the signature themselves but bill it, so a caller counts it too.
//!
//! - GSM-7 (3GPP TS 23.038 default alphabet): 160 septets in one message, 153 per part of a
//!   longer one (the 7 missing septets carry the concatenation header). A character of the
//!   extension table (`^ { } \ [ ~ ] | €` and form feed) is an escape plus a character: it
//!   counts two and is never split from its escape.
//! - UCS-2 (any character outside GSM-7, so any hanzi, and 【】): 70 UTF-16 code units in one
//!   message, 67 per part. A character outside the Basic Multilingual Plane (an emoji, a rare
//!   hanzi of Extension B) is two code units, and a pair is never split across parts.

/// The alphabet a message goes out in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Gsm7,
    Ucs2,
}

impl Encoding {
    /// The name operators see in `gongkai sms segments`.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Gsm7 => "GSM-7",
            Encoding::Ucs2 => "UCS-2",
        }
    }

    /// Units in a message that fits in one part.
    pub fn single(self) -> usize {
        match self {
            Encoding::Gsm7 => 160,
            Encoding::Ucs2 => 70,
        }
    }

    /// Units in each part of a concatenated message.
    pub fn per_part(self) -> usize {
        match self {
            Encoding::Gsm7 => 153,
            Encoding::Ucs2 => 67,
        }
    }
}

/// A text as the network carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segments {
    pub encoding: Encoding,
    /// Billed characters: septets for GSM-7 (an extension character is two), UTF-16 code units
    /// for UCS-2 (a character outside the BMP is two).
    pub chars: usize,
    /// Messages the text costs. An empty text is one message.
    pub parts: usize,
    /// The text of each part, in order; concatenated they give the input back.
    pub part_texts: Vec<String>,
}

const GSM_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\u{1b}ÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
const GSM_EXTENSION: &str = "^{}\\[~]|€\u{c}";

/// Septets `c` takes in GSM-7, or `None` when GSM-7 cannot carry it.
pub fn gsm_septets(c: char) -> Option<usize> {
    if GSM_BASIC.contains(c) {
        Some(1)
    } else if GSM_EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// The encoding `text` needs: GSM-7 when every character is in its tables.
pub fn encoding_of(text: &str) -> Encoding {
    if text.chars().all(|c| gsm_septets(c).is_some()) {
        Encoding::Gsm7
    } else {
        Encoding::Ucs2
    }
}

fn units(c: char, encoding: Encoding) -> usize {
    match encoding {
        // Only called with characters `encoding_of` accepted.
        Encoding::Gsm7 => gsm_septets(c).unwrap_or(2),
        Encoding::Ucs2 => c.len_utf16(),
    }
}

/// Counts and cuts `text` the way the networks do.
pub fn segment(text: &str) -> Segments {
    let encoding = encoding_of(text);
    let chars: usize = text.chars().map(|c| units(c, encoding)).sum();
    if chars <= encoding.single() {
        return Segments {
            encoding,
            chars,
            parts: 1,
            part_texts: vec![text.to_owned()],
        };
    }
    // Cut greedily at whole characters: an escape pair or a surrogate pair that does not fit
    // goes to the next part, as the phones and the SMSCs do.
    let limit = encoding.per_part();
    let mut part_texts = Vec::new();
    let mut current = String::new();
    let mut used = 0;
    for c in text.chars() {
        let n = units(c, encoding);
        if used + n > limit {
            part_texts.push(std::mem::take(&mut current));
            used = 0;
        }
        current.push(c);
        used += n;
    }
    if !current.is_empty() {
        part_texts.push(current);
    }
    Segments {
        encoding,
        chars,
        parts: part_texts.len(),
        part_texts,
    }
}

/// The whole message as the phone shows it: 【signature】 before the text.
pub fn with_signature(signature: &str, text: &str) -> String {
    format!("【{signature}】{text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(text: &str) -> usize {
        segment(text).parts
    }

    #[test]
    fn gsm_boundaries_match_the_twilio_calculator() {
        assert_eq!(parts(&"a".repeat(160)), 1);
        assert_eq!(parts(&"a".repeat(161)), 2);
        assert_eq!(parts(&"a".repeat(306)), 2);
        assert_eq!(parts(&"a".repeat(307)), 3);
        assert_eq!(segment(&"a".repeat(161)).part_texts[0].len(), 153);
        assert_eq!(segment("hello").encoding, Encoding::Gsm7);
    }

    #[test]
    fn gsm_extension_characters_count_two_and_stay_with_their_escape() {
        let s = segment(&format!("{}€", "a".repeat(158)));
        assert_eq!((s.encoding, s.chars, s.parts), (Encoding::Gsm7, 160, 1));
        assert_eq!(parts(&format!("{}{{", "a".repeat(159))), 2);
        // 152 septets then `{`: the pair would straddle the boundary, so it opens part two.
        let s = segment(&format!("{}{{{}", "a".repeat(152), "b".repeat(10)));
        assert_eq!(s.part_texts[0], "a".repeat(152));
        assert!(s.part_texts[1].starts_with('{'));
    }

    #[test]
    fn one_chinese_character_forces_ucs2() {
        let s = segment(&format!("{}中", "a".repeat(20)));
        assert_eq!((s.encoding, s.chars, s.parts), (Encoding::Ucs2, 21, 1));
    }

    #[test]
    fn ucs2_boundaries_match_chinese_billing() {
        for (n, want) in [
            (70, 1),
            (71, 2),
            (134, 2),
            (135, 3),
            (160, 3),
            (201, 3),
            (202, 4),
        ] {
            assert_eq!(parts(&"公".repeat(n)), want, "{n} hanzi");
        }
        let s = segment(&"公".repeat(100));
        assert_eq!(
            s.part_texts
                .iter()
                .map(|p| p.chars().count())
                .collect::<Vec<_>>(),
            [67, 33]
        );
    }

    #[test]
    fn an_emoji_is_two_units_and_never_split() {
        let s = segment("😀");
        assert_eq!((s.encoding, s.chars, s.parts), (Encoding::Ucs2, 2, 1));
        let text = format!("{}😀", "公".repeat(66));
        let s = segment(&format!("{text}{}", "公".repeat(10)));
        assert_eq!(s.chars, 78);
        assert_eq!(s.part_texts[0], "公".repeat(66));
        assert!(s.part_texts[1].starts_with('😀'));
        assert_eq!(s.part_texts.concat(), format!("{text}{}", "公".repeat(10)));
    }

    #[test]
    fn the_signature_is_counted() {
        // 【】 are not GSM-7, so a signed English text is billed as UCS-2.
        let text = with_signature("大余县政务公开", &"公".repeat(61));
        assert_eq!(segment(&text).chars, 70);
        assert_eq!(segment(&text).parts, 1);
        let text = with_signature("大余县政务公开", &"公".repeat(62));
        assert_eq!(segment(&text).parts, 2);
    }

    #[test]
    fn empty_text_is_one_message() {
        assert_eq!(segment("").parts, 1);
    }
}
