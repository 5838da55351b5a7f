//! How long `gongkai validate` takes on a large county: 200 displays, 50 playlists, 2,000
//! items, parsed from YAML text, validated into a Model, and every character checked against
//! the displays' fonts (file reading excluded).

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use gongkai::diag::Report;

mod gen_site;

fn validate_large_site(c: &mut Criterion) {
    let sources = gen_site::generate();
    let loaded = gongkai::config::validate::check(sources.clone(), Report::default());
    assert!(
        loaded.model.is_some(),
        "the generated site must be valid:\n{}",
        loaded.report.render(Default::default())
    );
    let bytes: usize = sources
        .playlists
        .iter()
        .chain(&sources.profiles)
        .chain(&sources.site)
        .map(|f| f.text.len())
        .sum();
    println!(
        "site: {} displays, {} playlists, {} items, {} KiB of YAML",
        gen_site::DISPLAYS,
        gen_site::PLAYLISTS,
        gen_site::PLAYLISTS * gen_site::ITEMS_PER_PLAYLIST,
        bytes / 1024
    );
    c.bench_function("validate_200_displays_50_playlists_2000_items", |b| {
        b.iter_batched(
            || sources.clone(),
            |sources| {
                // What `gongkai validate` does after reading the files: the checks of every
                // file, then every character of every item against its displays' fonts.
                let mut loaded = gongkai::config::validate::check(sources, Report::default());
                if let Some(model) = &loaded.model {
                    gongkai::config::glyphs::check(
                        model,
                        std::path::Path::new("."),
                        &mut loaded.report,
                    );
                }
                loaded
            },
            BatchSize::LargeInput,
        )
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = validate_large_site
}
criterion_main!(benches);
