//! A touchscreen page: one example notice rendered as a full 1080×1920 rgb888 page with the
//! shipped Noto Sans SC at 40 px (warm glyph cache, as in the daemon, and cold: the first page
//! after start), and that page's PNG encoding. Throughput is one page per iteration; the PNG's
//! size is printed before the timings.

use std::hint::black_box;
use std::path::Path;

use chrono::TimeZone;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gongkai::font::scalable::{CoverageCache, ScalableFont};
use gongkai::kiosk::render::{Sizes, encode_png, render};

fn kiosk(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let model = gongkai::config::load(root)
        .model
        .expect("the example site is valid");
    let now = model
        .site
        .timezone
        .with_ymd_and_hms(2026, 12, 22, 10, 0, 0)
        .single()
        .expect("a local time");
    let (_, item) = model.item("kiosk-zp-teachers").expect("example item");
    let sizes = Sizes::new(1080, Some(40));

    let mut glyphs = CoverageCache::new(ScalableFont::noto_sans_sc());
    let page = render(item, 1080, 1920, sizes, &now, &mut glyphs).remove(0);
    let png = encode_png(&page).expect("encodes");
    println!(
        "kiosk page 1080x1920: {} bytes raw rgb888, {} bytes PNG ({:.1}%)",
        page.data.len(),
        png.len(),
        100.0 * png.len() as f64 / page.data.len() as f64
    );

    let mut group = c.benchmark_group("kiosk");
    group.throughput(Throughput::Elements(1));
    group.sample_size(20);
    group.bench_function("page_render_1080x1920_warm_cache", |b| {
        b.iter(|| {
            black_box(render(
                black_box(item),
                1080,
                1920,
                sizes,
                &now,
                &mut glyphs,
            ))
        })
    });
    group.bench_function("page_render_1080x1920_cold_cache", |b| {
        b.iter(|| {
            let mut cold = CoverageCache::new(ScalableFont::noto_sans_sc());
            black_box(render(black_box(item), 1080, 1920, sizes, &now, &mut cold))
        })
    });
    group.bench_function("page_png_1080x1920", |b| {
        b.iter(|| black_box(encode_png(black_box(&page)).expect("encodes")))
    });
    group.finish();
}

criterion_group!(benches, kiosk);
criterion_main!(benches);
