//! Fuzz target `csv_import`: a hostile subscribers file through `sms::subscribers::import`.
//!
//! Asserts: no panic, and what the importer promises about what it keeps: every imported
//! subscriber is filed under its own number, that number is already normalised (11 digits of
//! a segment in use), no opted-out number is imported, and masking shows no more than the
//! first three and the last four digits.
//!
//! Input: the file's bytes; bytes that are not UTF-8 are replaced (U+FFFD), as a reader of an
//! operator's file would. The seeds in `fuzz/corpus/csv_import/` are small files with English
//! and Chinese headers, a byte-order mark, quoted cells, ragged rows and opted-out numbers.
#![no_main]

use gongkai::sms::subscribers::{OptOuts, import, mask, normalize};
use libfuzzer_sys::fuzz_target;

/// Opt-outs as the ledger would hand them over: numbers that replied TD.
const OPTED_OUT: [&str; 2] = ["13900139000", "+86 137-0013-7000"];

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut opt_outs = OptOuts::new();
    for number in OPTED_OUT {
        opt_outs.add(number).expect("the opt-out numbers are valid");
    }
    let Ok(import) = import(&text, &opt_outs) else {
        return;
    };
    for (key, subscriber) in &import.subscribers {
        assert_eq!(key, &subscriber.number, "filed under another number");
        assert_eq!(
            normalize(&subscriber.number).as_deref(),
            Ok(subscriber.number.as_str()),
            "imported a number that is not normalised"
        );
        assert!(
            !opt_outs.contains(&subscriber.number),
            "imported an opted-out number"
        );
        let masked = mask(&subscriber.number);
        assert_eq!(masked.chars().count(), 11);
        assert_eq!(&masked[3..7], "****", "mask shows the middle digits");
    }
    for error in &import.errors {
        let _ = (error.reason.key(), error.reason.to_string());
    }
});
