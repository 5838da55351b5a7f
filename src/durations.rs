//! How long each item plays on each display, from the real fonts: the glue between `layout`
//! (which measures with a display's `FontChain`) and `schedule` (which takes durations as an
//! argument and must not load fonts).
//!
//! A duration depends only on the item and the display's profile, so it is computed once per
//! (item, profile) and kept. When a profile's fonts cannot be loaded or an item cannot be laid
//! out (both already reported by `validate`), the font-free estimate stands in.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use crate::config::glyphs::load_chain;
use crate::config::model::{DisplayIdx, Item, Model, ProfileIdx};
use crate::font::FontChain;
use crate::layout::{Canvas, Content, layout};
use crate::schedule::estimate;

/// Durations of a site's items, computed on first use.
pub struct Durations<'m> {
    model: &'m Model,
    site_dir: &'m Path,
    chains: RefCell<HashMap<ProfileIdx, Option<FontChain>>>,
    known: RefCell<HashMap<(String, ProfileIdx), Duration>>,
}

impl<'m> Durations<'m> {
    pub fn new(model: &'m Model, site_dir: &'m Path) -> Durations<'m> {
        Durations {
            model,
            site_dir,
            chains: RefCell::default(),
            known: RefCell::default(),
        }
    }

    /// How long `item` plays on `display`.
    pub fn of(&self, item: &Item, display: DisplayIdx) -> Duration {
        let Some(profile_index) = self.model.displays.get(display).map(|d| d.profile) else {
            return estimate::duration(self.model, item, display);
        };
        let key = (item.id.clone(), profile_index);
        if let Some(known) = self.known.borrow().get(&key) {
            return *known;
        }
        let profile = &self.model.profiles[profile_index];
        let mut chains = self.chains.borrow_mut();
        let chain = chains
            .entry(profile_index)
            .or_insert_with(|| load_chain(&profile.font, self.site_dir).ok());
        let measured = chain.as_mut().and_then(|fonts| {
            layout(&Content::of(item), &Canvas::of(profile), fonts)
                .ok()
                .map(|laid| laid.duration(&item.show))
        });
        let duration = measured.unwrap_or_else(|| estimate::duration(self.model, item, display));
        self.known.borrow_mut().insert(key, duration);
        duration
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_durations_of_the_example_county_follow_layout() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let model = crate::config::load(root).model.expect("example county");
        let durations = Durations::new(&model, root);
        let (playlist, item) = model.item("cg-2026-118").expect("item");
        let display = playlist.targets[0];
        let first = durations.of(item, display);
        // Two passes of a scrolling notice at 32 px/s take well over a minute.
        assert!(first > Duration::from_secs(60), "{first:?}");
        // Kept, not recomputed.
        assert_eq!(durations.of(item, display), first);
        assert_eq!(durations.known.borrow().len(), 1);
    }
}
