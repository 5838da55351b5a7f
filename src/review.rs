//! Review before publishing (三审): the stages an item passes, the hash that binds a review to
//! the text it reviewed, and the rule that decides how far an item has got.
//!
//! Owns the rules only. The records live in the daemon's database (`store`, table `review`);
//! the daemon takes items below the site's required stage out of what boards and SMS get, and
//! `gongkai sms send` refuses them.
//!
//! The county's 三审制度: first review by the disclosure office (初审, `reviewed`), legal review
//! by the legal affairs office (复审, `legal`), final approval by the leading group (审定,
//! `approved`). Each stage counts only on top of the one before it, for the same text, and by
//! a different person: the point of three reviews is three pairs of eyes. A second approval for
//! a mass SMS (`mass-sms`) is recorded once the item has the stage the site requires, by someone
//! other than its approver.
//!
//! Every review is bound to [`content_hash`] of what the reviewer saw: title, body, category,
//! department, validity and channels. Change any of them and the item is a draft again, whatever
//! was recorded before; put the old text back and the old reviews count again (they reviewed
//! exactly that).

use std::fmt;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::config::model::Item;
use crate::config::raw::Channel;

/// How far an item has got. Ordered: a later stage includes the earlier ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Nothing recorded for the current text.
    #[default]
    Draft,
    /// 初审: first review.
    Reviewed,
    /// 复审: legal review.
    Legal,
    /// 审定: final approval.
    Approved,
}

impl Stage {
    pub const ALL: [Stage; 4] = [Stage::Draft, Stage::Reviewed, Stage::Legal, Stage::Approved];

    /// The name stored and written in the site file.
    pub fn code(self) -> &'static str {
        match self {
            Stage::Draft => "draft",
            Stage::Reviewed => "reviewed",
            Stage::Legal => "legal",
            Stage::Approved => "approved",
        }
    }

    /// The county's name for the stage.
    pub fn chinese(self) -> &'static str {
        match self {
            Stage::Draft => "草稿",
            Stage::Reviewed => "初审",
            Stage::Legal => "复审",
            Stage::Approved => "审定",
        }
    }

    /// Reads `reviewed`, `初审`, … (either language).
    pub fn parse(text: &str) -> Option<Stage> {
        let text = text.trim();
        Stage::ALL
            .into_iter()
            .find(|s| s.code().eq_ignore_ascii_case(text) || s.chinese() == text)
    }

    fn previous(self) -> Option<Stage> {
        match self {
            Stage::Draft => None,
            Stage::Reviewed => Some(Stage::Draft),
            Stage::Legal => Some(Stage::Reviewed),
            Stage::Approved => Some(Stage::Legal),
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// What a reviewer can record: a stage of the 三审, or the second approval of a mass SMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    Stage(Stage),
    MassSms,
}

impl Step {
    pub const MASS_SMS: &'static str = "mass-sms";

    pub fn code(self) -> &'static str {
        match self {
            Step::Stage(stage) => stage.code(),
            Step::MassSms => Self::MASS_SMS,
        }
    }

    /// Reads a stage name or `mass-sms` (`群发复核`); `draft` is not a step one records.
    pub fn parse(text: &str) -> Option<Step> {
        let text = text.trim();
        if text.eq_ignore_ascii_case(Self::MASS_SMS) || text == "群发复核" {
            return Some(Step::MassSms);
        }
        match Stage::parse(text)? {
            Stage::Draft => None,
            stage => Some(Step::Stage(stage)),
        }
    }
}

/// One recorded review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub item: String,
    pub step: Step,
    pub by: String,
    pub at: DateTime<Utc>,
    /// [`content_hash`] of the item as the reviewer saw it.
    pub hash: String,
}

/// The SHA-256 (lowercase hex) of everything a reviewer approves about an item. Fields are
/// length-prefixed, so moving text from the title into the body changes the hash.
pub fn content_hash(item: &Item) -> String {
    let mut h = Sha256::new();
    let mut field = |text: &str| {
        h.update((text.len() as u64).to_le_bytes());
        h.update(text.as_bytes());
    };
    field(&item.id);
    field(&item.title);
    field(&item.body);
    field(item.category.name());
    field(item.department.as_deref().unwrap_or(""));
    let when = |t: &Option<DateTime<chrono_tz::Tz>>| t.map(|t| t.to_rfc3339()).unwrap_or_default();
    field(&when(&item.valid.from));
    field(&when(&item.valid.until));
    // Written out rather than taken from `Debug`: the hash is stored with every review, so it
    // must not change when an enum is renamed.
    let channels: Vec<&str> = item
        .channels
        .iter()
        .map(|c| match c {
            Channel::Board => "board",
            Channel::Touch => "touch",
            Channel::Sms => "sms",
        })
        .collect();
    field(&channels.join(","));
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Where an item stands for its current text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Standing {
    pub stage: Stage,
    /// The records that got it there, in stage order.
    pub chain: Vec<Record>,
    /// The second approval of a mass SMS, if one counts.
    pub mass_sms: Option<Record>,
    /// Reviews recorded for an earlier text: the item changed after them.
    pub stale: usize,
}

impl Standing {
    /// Who recorded `stage` for the current text.
    pub fn by(&self, stage: Stage) -> Option<&str> {
        self.chain
            .iter()
            .find(|r| r.step == Step::Stage(stage))
            .map(|r| r.by.as_str())
    }
}

/// How far `hash` has got, from an item's `records` (any order, any text). Each stage counts
/// only on top of the previous one for the same text and by someone who recorded no earlier
/// stage of it; the earliest record that qualifies is the one kept.
pub fn standing(hash: &str, records: &[Record]) -> Standing {
    let mut current: Vec<&Record> = records.iter().filter(|r| r.hash == hash).collect();
    current.sort_by_key(|r| r.at);
    let stale = records.len() - current.len();
    let mut standing = Standing {
        stale,
        ..Standing::default()
    };
    for stage in [Stage::Reviewed, Stage::Legal, Stage::Approved] {
        let found = current.iter().find(|r| {
            r.step == Step::Stage(stage) && !standing.chain.iter().any(|done| done.by == r.by)
        });
        match found {
            Some(record) => {
                standing.chain.push((*record).clone());
                standing.stage = stage;
            }
            None => break,
        }
    }
    let approver = standing.by(Stage::Approved).map(str::to_owned);
    standing.mass_sms = current
        .iter()
        .find(|r| r.step == Step::MassSms && approver.as_deref() != Some(r.by.as_str()))
        .map(|r| (*r).clone());
    standing
}

/// Why a review cannot be recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{step} needs {needs} first, for this text")]
    OutOfOrder { step: &'static str, needs: Stage },
    #[error("{by} already recorded {stage} for this text")]
    SamePerson { by: String, stage: Stage },
    #[error("{stage} is recorded already for this text, by {by}")]
    Done { stage: &'static str, by: String },
    #[error("the reviewer's name is empty")]
    NoName,
}

/// Checks that `by` may record `step` on top of `standing`: the stage before it is there, the
/// stage itself is not, and `by` has not reviewed this text at another stage. A `mass-sms`
/// approval needs the stage the site `required` and someone other than the approver.
pub fn check(standing: &Standing, step: Step, by: &str, required: Stage) -> Result<(), Refusal> {
    let by = by.trim();
    if by.is_empty() {
        return Err(Refusal::NoName);
    }
    match step {
        Step::MassSms => {
            if standing.stage < required {
                return Err(Refusal::OutOfOrder {
                    step: step.code(),
                    needs: required,
                });
            }
            if let Some(done) = &standing.mass_sms {
                return Err(Refusal::Done {
                    stage: step.code(),
                    by: done.by.clone(),
                });
            }
            if standing.by(Stage::Approved) == Some(by) {
                return Err(Refusal::SamePerson {
                    by: by.to_owned(),
                    stage: Stage::Approved,
                });
            }
        }
        Step::Stage(stage) => {
            if standing.stage >= stage {
                return Err(Refusal::Done {
                    stage: step.code(),
                    by: standing.by(stage).unwrap_or_default().to_owned(),
                });
            }
            let needs = stage.previous().unwrap_or(Stage::Draft);
            if standing.stage < needs {
                return Err(Refusal::OutOfOrder {
                    step: step.code(),
                    needs,
                });
            }
            if let Some(Record {
                step: Step::Stage(stage),
                ..
            }) = standing.chain.iter().find(|r| r.by == by)
            {
                return Err(Refusal::SamePerson {
                    by: by.to_owned(),
                    stage: *stage,
                });
            }
        }
    }
    Ok(())
}

/// Why an item's bulletin may not go out (yet).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmsHold {
    #[error("the item is {stage}; SMS needs {required}")]
    NotReviewed { stage: Stage, required: Stage },
    #[error(
        "{recipients} recipients is more than {limit}: a mass SMS needs a second approval by \
         someone other than its approver {approver} (gongkai review ITEM --stage mass-sms --by NAME)"
    )]
    NeedsSecondApproval {
        recipients: u64,
        limit: u32,
        approver: String,
    },
}

/// Whether an item standing at `standing` may be sent to `recipients` subscribers: reviewed as
/// far as the site requires, and above `limit` recipients also approved by a second person.
/// The second approval is asked for whatever the site requires, because sending to the whole
/// county at once is the mistake it is there to stop.
pub fn sms_allowed(
    standing: &Standing,
    required: Stage,
    recipients: u64,
    limit: u32,
) -> Result<(), SmsHold> {
    if standing.stage < required {
        return Err(SmsHold::NotReviewed {
            stage: standing.stage,
            required,
        });
    }
    if recipients > u64::from(limit) && standing.mass_sms.is_none() {
        return Err(SmsHold::NeedsSecondApproval {
            recipients,
            limit,
            approver: standing.by(Stage::Approved).unwrap_or("-").to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(step: Step, by: &str, minute: i64, hash: &str) -> Record {
        Record {
            item: "cg-1".into(),
            step,
            by: by.into(),
            at: DateTime::from_timestamp(1_800_000_000 + minute * 60, 0).unwrap(),
            hash: hash.into(),
        }
    }

    const R: Step = Step::Stage(Stage::Reviewed);
    const L: Step = Step::Stage(Stage::Legal);
    const A: Step = Step::Stage(Stage::Approved);

    #[test]
    fn three_reviews_by_three_people_approve_the_text_they_saw() {
        let records = [
            record(R, "张", 1, "h1"),
            record(L, "李", 2, "h1"),
            record(A, "王", 3, "h1"),
        ];
        let s = standing("h1", &records);
        assert_eq!(s.stage, Stage::Approved);
        assert_eq!(s.by(Stage::Legal), Some("李"));
        assert_eq!(s.stale, 0);
        // The text changed: back to draft, the old reviews are stale.
        let s = standing("h2", &records);
        assert_eq!(s.stage, Stage::Draft);
        assert_eq!(s.stale, 3);
    }

    #[test]
    fn a_stage_without_the_one_before_it_does_not_count() {
        let records = [record(R, "张", 1, "h1"), record(A, "王", 3, "h1")];
        assert_eq!(standing("h1", &records).stage, Stage::Reviewed);
        // Legal review for another text does not bridge the gap.
        let records = [
            record(R, "张", 1, "h1"),
            record(L, "李", 2, "h0"),
            record(A, "王", 3, "h1"),
        ];
        assert_eq!(standing("h1", &records).stage, Stage::Reviewed);
    }

    #[test]
    fn one_person_counts_for_one_stage_only() {
        let records = [
            record(R, "张", 1, "h1"),
            record(L, "张", 2, "h1"),
            record(A, "王", 3, "h1"),
        ];
        assert_eq!(standing("h1", &records).stage, Stage::Reviewed);
        let s = standing("h1", &records[..1]);
        assert_eq!(
            check(&s, L, "张", Stage::Approved),
            Err(Refusal::SamePerson {
                by: "张".into(),
                stage: Stage::Reviewed
            })
        );
        assert_eq!(check(&s, L, "李", Stage::Approved), Ok(()));
    }

    #[test]
    fn steps_are_refused_out_of_order_or_twice() {
        let none = standing("h1", &[]);
        assert!(matches!(
            check(&none, A, "王", Stage::Approved),
            Err(Refusal::OutOfOrder {
                needs: Stage::Legal,
                ..
            })
        ));
        assert!(matches!(
            check(&none, Step::MassSms, "赵", Stage::Approved),
            Err(Refusal::OutOfOrder {
                needs: Stage::Approved,
                ..
            })
        ));
        assert_eq!(check(&none, R, " ", Stage::Approved), Err(Refusal::NoName));
        let s = standing("h1", &[record(R, "张", 1, "h1")]);
        assert!(matches!(
            check(&s, R, "李", Stage::Approved),
            Err(Refusal::Done { .. })
        ));
    }

    #[test]
    fn a_mass_sms_needs_someone_other_than_the_approver() {
        let mut records = vec![
            record(R, "张", 1, "h1"),
            record(L, "李", 2, "h1"),
            record(A, "王", 3, "h1"),
        ];
        let s = standing("h1", &records);
        assert_eq!(s.mass_sms, None);
        assert!(matches!(
            check(&s, Step::MassSms, "王", Stage::Approved),
            Err(Refusal::SamePerson { .. })
        ));
        assert_eq!(check(&s, Step::MassSms, "赵", Stage::Approved), Ok(()));
        records.push(record(Step::MassSms, "王", 4, "h1"));
        assert_eq!(standing("h1", &records).mass_sms, None);
        records.push(record(Step::MassSms, "赵", 5, "h1"));
        assert_eq!(
            standing("h1", &records).mass_sms.map(|r| r.by),
            Some("赵".to_owned())
        );
        // A second approval of an earlier text does not carry over.
        assert_eq!(standing("h2", &records).mass_sms, None);
    }

    #[test]
    fn a_mass_send_without_a_second_approver_is_refused() {
        let mut records = vec![
            record(R, "张", 1, "h1"),
            record(L, "李", 2, "h1"),
            record(A, "王", 3, "h1"),
        ];
        let s = standing("h1", &records);
        assert_eq!(sms_allowed(&s, Stage::Approved, 1000, 1000), Ok(()));
        assert_eq!(
            sms_allowed(&s, Stage::Approved, 1001, 1000),
            Err(SmsHold::NeedsSecondApproval {
                recipients: 1001,
                limit: 1000,
                approver: "王".into()
            })
        );
        records.push(record(Step::MassSms, "赵", 4, "h1"));
        let s = standing("h1", &records);
        assert_eq!(sms_allowed(&s, Stage::Approved, 50_000, 1000), Ok(()));
        let draft = standing("h2", &records);
        assert_eq!(
            sms_allowed(&draft, Stage::Approved, 1, 1000),
            Err(SmsHold::NotReviewed {
                stage: Stage::Draft,
                required: Stage::Approved
            })
        );
        // A site that requires no review still asks a second person before a mass send;
        // there is no approver then, so anyone's second approval of the text counts.
        assert!(matches!(
            sms_allowed(&draft, Stage::Draft, 1001, 1000),
            Err(SmsHold::NeedsSecondApproval { .. })
        ));
        assert_eq!(check(&draft, Step::MassSms, "钱", Stage::Draft), Ok(()));
        let records = [record(Step::MassSms, "钱", 5, "h2")];
        let draft = standing("h2", &records);
        assert_eq!(sms_allowed(&draft, Stage::Draft, 1001, 1000), Ok(()));
    }

    #[test]
    fn the_hash_of_a_text_is_pinned() {
        // Stored with every review: a change here would send every approved item back to
        // draft after an upgrade. Changing it is a migration, not a refactor.
        use crate::config::model::{Show, Validity};
        let item = Item {
            id: "cg-1".into(),
            title: "标题".into(),
            body: "正文".into(),
            category: crate::config::raw::Category::Procurement,
            department: Some("县财政局".into()),
            valid: Validity {
                from: None,
                until: None,
            },
            show: Show::default(),
            color: None,
            channels: vec![Channel::Board, Channel::Sms],
            at_least_every: None,
            line: 1,
            id_at: (1, 1),
            title_at: (1, 1, 1),
            body_at: None,
        };
        let hash = content_hash(&item);
        assert_eq!(hash.len(), 64);
        assert_eq!(hash, PINNED_HASH);
        let mut edited = item.clone();
        edited.body.push('。');
        assert_ne!(content_hash(&edited), hash);
        // Moving text between fields changes it too.
        let mut moved = item;
        moved.title = "标题正".into();
        moved.body = "文".into();
        assert_ne!(content_hash(&moved), hash);
    }

    const PINNED_HASH: &str = "6958733413eb825ab6caf32685732225f1cb69dfac1a70d642f433a1cec47d2e";

    #[test]
    fn stage_and_step_names_in_both_languages() {
        assert_eq!(Stage::parse("复审"), Some(Stage::Legal));
        assert_eq!(Stage::parse("Approved"), Some(Stage::Approved));
        assert_eq!(Step::parse("draft"), None);
        assert_eq!(Step::parse("群发复核"), Some(Step::MassSms));
        assert_eq!(Step::parse("legal"), Some(L));
        assert_eq!(Step::parse("final"), None);
    }
}
