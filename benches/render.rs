//! How fast text reaches a board's pixels: a 192×64 page of 16 px hanzi through the glyph cache
//! and, for comparison, through u8g2-fonts' own DrawTarget path; a scroll frame cut out of a
//! long pre-rendered strip; and a whole item (layout + render) on the square board. Throughput
//! is one page (frame) per iteration, so criterion's "thrpt" line reads as pages per second.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use embedded_graphics::pixelcolor::BinaryColor;
use embedded_graphics::prelude::Point;
use gongkai::config::model::{BuiltinFont, PixelFormat, Show, Zones};
use gongkai::font::FontChain;
use gongkai::layout::{Canvas, Content, layout};
use gongkai::raster::mono::{MonoFrame, cut_window};
use gongkai::raster::{Paint, render_page};
use u8g2_fonts::types::{FontColor, VerticalPosition};
use u8g2_fonts::{FontRenderer, fonts};

/// A notice sentence broken into four lines of 12 hanzi (16 px each: 192 px).
const PAGE: [&str; 4] = [
    "关于开展城区道路照明改造",
    "工程施工期间临时交通管制",
    "的公告请广大市民合理安排",
    "出行路线特此公告敬请谅解",
];
const BASELINES: [i32; 4] = [14, 30, 46, 62];

fn render(c: &mut Criterion) {
    let mut group = c.benchmark_group("render");
    group.throughput(Throughput::Elements(1));

    let mut fonts = FontChain::builtin(BuiltinFont::Wqy16);
    let mut frame = MonoFrame::new(192, 64);
    for (line, y) in PAGE.iter().zip(BASELINES) {
        assert_eq!(frame.draw_text(&mut fonts, 0, y, line), 192);
    }
    let cached_page = frame.clone();
    group.bench_function("page_render_192x64_wqy16", |b| {
        b.iter(|| {
            frame.clear();
            for (line, y) in PAGE.iter().zip(BASELINES) {
                frame.draw_text(&mut fonts, 0, y, black_box(line));
            }
            black_box(&frame);
        })
    });

    let renderer = FontRenderer::new::<fonts::u8g2_font_wqy16_t_gb2312>();
    let mut reference = MonoFrame::new(192, 64);
    // Checked before measuring, so a filtered run still checks it.
    for (line, y) in PAGE.iter().zip(BASELINES) {
        let _ = renderer.render(
            *line,
            Point::new(0, y),
            VerticalPosition::Baseline,
            FontColor::Transparent(BinaryColor::On),
            &mut reference,
        );
    }
    assert_eq!(reference, cached_page, "both paths draw the same page");
    group.bench_function("page_render_u8g2_fonts_reference", |b| {
        b.iter(|| {
            reference.clear();
            for (line, y) in PAGE.iter().zip(BASELINES) {
                let _ = renderer.render(
                    black_box(*line),
                    Point::new(0, y),
                    VerticalPosition::Baseline,
                    FontColor::Transparent(BinaryColor::On),
                    &mut reference,
                );
            }
            black_box(&reference);
        })
    });

    // A ~4,000 px scrolling line rendered once; a frame per scroll step is cut out of it.
    let mut strip = MonoFrame::new(4000, 64);
    let text = PAGE.concat();
    let mut pen = 0;
    while pen < 4000 {
        pen = strip.draw_text(&mut fonts, pen, 30, &text);
    }
    let mut out = MonoFrame::new(192, 64);
    let mut offset = 0u32;
    group.bench_function("scroll_cut_192x64", |b| {
        b.iter(|| {
            offset = (offset + 1) % (4000 - 192);
            cut_window(&strip, black_box(offset), &mut out);
            black_box(&out);
        })
    });

    // A whole item on the square board: layout (line breaking, pages) and the first page.
    let canvas = Canvas {
        width: 192,
        height: 64,
        zones: Zones::default(),
    };
    let content = Content {
        title: "城区道路照明节能改造项目采购结果公示",
        body: "大余县城区道路照明节能改造项目经公开招标，确定中标供应商为赣州明辉照明工程有限公司，中标金额人民币1,234,567.89元。公示期自2026年12月1日至12月7日。",
        category: "政府采购",
        show: Show::default(),
    };
    let paint = Paint {
        format: PixelFormat::Mono,
        width: 192,
        height: 64,
        color: None,
        clock: None,
    };
    group.bench_function("item_layout_and_first_page_192x64", |b| {
        b.iter(|| {
            let laid = layout(black_box(&content), &canvas, &mut fonts).expect("layout");
            black_box(render_page(&laid, 0, &mut fonts, &paint))
        })
    });
    group.finish();
}

criterion_group!(benches, render);
criterion_main!(benches);
