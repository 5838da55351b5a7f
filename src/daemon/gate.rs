//! The publication gate: which items of the site as loaded reach boards, kiosks and SMS.
//!
//! Owns the rule, as a pure function: an item goes out when it is not withdrawn and its review
//! (see [`crate::review`]) has reached the stage the site requires, for its current text. What
//! is held back is listed with the reason, for the status API and the operator.

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;

use crate::config::model::Model;
use crate::review::{self, Record, Stage};

/// An item kept off boards and SMS until it is reviewed far enough.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Held {
    pub item: String,
    pub title: String,
    pub playlist: String,
    /// How far its current text has got.
    pub stage: Stage,
    pub required: Stage,
    /// Reviews recorded for an earlier text of the item: it was edited after them.
    pub stale_reviews: usize,
    /// The hash a reviewer approves now.
    pub hash: String,
}

/// What the gate lets through.
#[derive(Debug, Clone)]
pub struct Gated {
    /// The site without withdrawn and held items; `None` when nothing is taken out.
    pub model: Option<Model>,
    pub held: Vec<Held>,
    /// Items whose current text has a second approval for a mass SMS.
    pub mass_sms: BTreeSet<String>,
    /// The hash of every item that passed, by item id.
    pub passed: HashMap<String, String>,
}

/// Applies the gate to `loaded`.
pub fn gate(loaded: &Model, withdrawn: &BTreeSet<String>, reviews: &[Record]) -> Gated {
    let required = loaded.site.review.required;
    let mut by_item: HashMap<&str, Vec<Record>> = HashMap::new();
    for record in reviews {
        by_item
            .entry(record.item.as_str())
            .or_default()
            .push(record.clone());
    }
    let mut held = Vec::new();
    let mut mass_sms = BTreeSet::new();
    let mut passed = HashMap::new();
    let mut out: BTreeSet<String> = withdrawn.clone();
    for playlist in &loaded.playlists {
        for item in &playlist.items {
            let hash = review::content_hash(item);
            let records = by_item.get(item.id.as_str()).map_or(&[][..], Vec::as_slice);
            let standing = review::standing(&hash, records);
            if standing.mass_sms.is_some() {
                mass_sms.insert(item.id.clone());
            }
            if standing.stage >= required {
                passed.insert(item.id.clone(), hash);
                continue;
            }
            out.insert(item.id.clone());
            held.push(Held {
                item: item.id.clone(),
                title: item.title.clone(),
                playlist: playlist.id.clone(),
                stage: standing.stage,
                required,
                stale_reviews: standing.stale,
                hash,
            });
        }
    }
    let model = (!out.is_empty()).then(|| without_items(loaded, &out));
    Gated {
        model,
        held,
        mass_sms,
        passed,
    }
}

/// `model` without the items named in `ids`.
pub fn without_items(model: &Model, ids: &BTreeSet<String>) -> Model {
    let mut model = model.clone();
    for playlist in &mut model.playlists {
        playlist.items.retain(|item| !ids.contains(&item.id));
    }
    model
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::review::Step;

    fn site(required: &str) -> Model {
        use crate::config::{SiteSources, SourceFile, validate};
        let file = |name: &str, text: String| SourceFile {
            name: name.into(),
            text,
        };
        let sources = SiteSources {
            site: Some(file(
                "gongkai.yaml",
                format!(
                    "site: 测试县\nreview: {{ required: {required} }}\ndisplays:\n  - id: hall\n    profile: board\n    link: {{ simulated: true }}\n"
                ),
            )),
            profiles: vec![file(
                "hw-profiles/board.yaml",
                "width: 128\nheight: 16\npixel: mono\nfont: wqy16\nprotocol: gongkai\n".into(),
            )],
            playlists: vec![file(
                "playlists/main.yaml",
                "id: main\ntargets: [hall]\nitems:\n  - { id: a, title: 甲, category: 其他 }\n  - { id: b, title: 乙, category: 其他 }\n".into(),
            )],
            fonts: Vec::new(),
        };
        let loaded = validate::check(sources, crate::diag::Report::default());
        match loaded.model {
            Some(model) => model,
            None => panic!("{}", loaded.report.render(crate::i18n::Lang::En)),
        }
    }

    fn record(model: &Model, item: &str, step: Step, by: &str) -> Record {
        let found = model.playlists[0]
            .items
            .iter()
            .find(|i| i.id == item)
            .unwrap();
        Record {
            item: item.into(),
            step,
            by: by.into(),
            at: chrono::Utc::now(),
            hash: review::content_hash(found),
        }
    }

    fn ids(model: &Model) -> Vec<&str> {
        model.playlists[0]
            .items
            .iter()
            .map(|i| i.id.as_str())
            .collect()
    }

    #[test]
    fn only_approved_items_pass_by_default_and_the_rest_are_listed() {
        let model = site("approved");
        let reviews = [
            record(&model, "a", Step::Stage(Stage::Reviewed), "张"),
            record(&model, "a", Step::Stage(Stage::Legal), "李"),
            record(&model, "a", Step::Stage(Stage::Approved), "王"),
            record(&model, "b", Step::Stage(Stage::Reviewed), "张"),
        ];
        let gated = gate(&model, &BTreeSet::new(), &reviews);
        let passed = gated.model.expect("b is taken out");
        assert_eq!(ids(&passed), ["a"]);
        assert_eq!(gated.held.len(), 1);
        assert_eq!(
            (gated.held[0].item.as_str(), gated.held[0].stage),
            ("b", Stage::Reviewed)
        );
        assert!(gated.passed.contains_key("a"));
    }

    #[test]
    fn an_edited_approved_item_is_pulled_back_to_draft() {
        let model = site("approved");
        let reviews = [
            record(&model, "a", Step::Stage(Stage::Reviewed), "张"),
            record(&model, "a", Step::Stage(Stage::Legal), "李"),
            record(&model, "a", Step::Stage(Stage::Approved), "王"),
        ];
        let mut edited = model.clone();
        edited.playlists[0].items[0].body = "改过的正文".into();
        let gated = gate(&edited, &BTreeSet::new(), &reviews);
        assert!(ids(gated.model.as_ref().unwrap()).is_empty());
        let held = &gated.held[0];
        assert_eq!((held.stage, held.stale_reviews), (Stage::Draft, 3));
    }

    #[test]
    fn draft_lets_everything_through_except_what_is_withdrawn() {
        let model = site("draft");
        let gated = gate(&model, &BTreeSet::new(), &[]);
        assert!(gated.model.is_none(), "nothing taken out, no copy");
        assert!(gated.held.is_empty());
        let gated = gate(&model, &BTreeSet::from(["b".to_owned()]), &[]);
        assert_eq!(ids(&gated.model.unwrap()), ["a"]);
    }
}
