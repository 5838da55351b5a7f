//! The benchmark's generated site stays valid, so the benchmark measures a full validation.

#[path = "../../benches/gen_site.rs"]
mod gen_site;

#[test]
fn generated_large_site_is_valid() {
    let loaded = gongkai::config::validate::check(gen_site::generate(), Default::default());
    let model = loaded
        .model
        .unwrap_or_else(|| panic!("{}", loaded.report.render(Default::default())));
    assert_eq!(model.displays.len(), gen_site::DISPLAYS);
    assert_eq!(
        model.items().count(),
        gen_site::PLAYLISTS * gen_site::ITEMS_PER_PLAYLIST
    );
}
