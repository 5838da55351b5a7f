//! Rendering as a board shows it: golden frames stored as text art, the whole county plan on a
//! 192×64 board with nothing missing, and every display and item of the example county.
//!
//! Snapshots live in `tests/snapshots/NAME.txt`. After an intended change of the pictures, run
//! `GONGKAI_UPDATE_SNAPSHOTS=1 cargo test` and review the diff of those files before committing.

use std::path::PathBuf;

use gongkai::config::model::{BuiltinFont, PixelFormat, Rgb, Show, ShowMode, Zones};
use gongkai::font::{FontChain, Resolved};
use gongkai::layout::{Canvas, Content, layout};
use gongkai::raster::frame::Frame;
use gongkai::raster::{Paint, render_page, render_strip};

/// One character per pixel: `.` dark, `#` lit (mono), or the colour's initial.
fn text_art(frame: &Frame) -> String {
    let mut art = format!("{}x{} {:?}\n", frame.width, frame.height, frame.format);
    for y in 0..frame.height {
        for x in 0..frame.width {
            let c = match (frame.format, frame.pixel(x, y)) {
                (_, Rgb(0, 0, 0)) => '.',
                (PixelFormat::Mono, _) => '#',
                (_, Rgb(255, 0, 0)) => 'R',
                (_, Rgb(0, 255, 0)) => 'G',
                (_, Rgb(255, 255, 0)) => 'Y',
                (_, Rgb(255, 255, 255)) => 'W',
                (_, Rgb(0, 0, 255)) => 'B',
                _ => '?',
            };
            art.push(c);
        }
        art.push('\n');
    }
    art
}

fn assert_snapshot(name: &str, frame: &Frame) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(format!("{name}.txt"));
    let art = text_art(frame);
    if std::env::var_os("GONGKAI_UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &art).expect("write snapshot");
        return;
    }
    let golden = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "no snapshot {}: run GONGKAI_UPDATE_SNAPSHOTS=1 cargo test",
            path.display()
        )
    });
    assert!(
        golden == art,
        "{name} differs from its snapshot:\n--- golden\n{golden}\n--- now\n{art}"
    );
}

fn render(
    width: u32,
    height: u32,
    format: PixelFormat,
    title: &str,
    body: &str,
    color: Option<Rgb>,
) -> Frame {
    let mut fonts = FontChain::builtin(BuiltinFont::Wqy16);
    let canvas = Canvas {
        width,
        height,
        zones: Zones::default(),
    };
    let content = Content {
        title,
        body,
        category: "政府采购",
        show: Show::default(),
    };
    let laid = layout(&content, &canvas, &mut fonts).expect("layout");
    render_page(
        &laid,
        0,
        &mut fonts,
        &Paint {
            format,
            width,
            height,
            color,
            clock: None,
        },
    )
}

#[test]
fn snapshot_ascii() {
    assert_snapshot(
        "ascii",
        &render(96, 16, PixelFormat::Mono, "", "Tel 0797-8722345", None),
    );
}

#[test]
fn snapshot_hanzi() {
    assert_snapshot(
        "hanzi",
        &render(128, 16, PixelFormat::Mono, "", "不动产登记窗口", None),
    );
}

#[test]
fn snapshot_mixed_and_long_number_kept_whole() {
    assert_snapshot(
        "mixed",
        &render(
            128,
            48,
            PixelFormat::Mono,
            "",
            "中标金额人民币1,234,567.89元整",
            None,
        ),
    );
}

#[test]
fn snapshot_punctuation_never_starts_a_line() {
    // Eight hanzi fill a 128 px line; the comma must not open the second one.
    assert_snapshot(
        "punctuation",
        &render(
            128,
            32,
            PixelFormat::Mono,
            "",
            "公示期自十二月一日起，为期七天。",
            None,
        ),
    );
}

#[test]
fn snapshot_colour_markup_on_bicolor() {
    assert_snapshot(
        "markup-bicolor",
        &render(
            128,
            64,
            PixelFormat::Bicolor,
            "采购公示",
            "金额{green}100元{/}整",
            None,
        ),
    );
}

#[test]
fn snapshot_each_pixel_format() {
    for format in [
        PixelFormat::Mono,
        PixelFormat::Bicolor,
        PixelFormat::Rgb565,
        PixelFormat::Rgb888,
    ] {
        let name = format!("format-{format:?}").to_lowercase();
        assert_snapshot(
            &name,
            &render(64, 16, format, "", "政务公开", Some(Rgb(255, 255, 0))),
        );
    }
}

#[test]
fn snapshot_rare_name_drawn_by_unifont() {
    assert_snapshot(
        "fallback",
        &render(64, 16, PixelFormat::Mono, "", "李镕王玥", None),
    );
}

#[test]
fn whole_county_plan_renders_on_a_192x64_board_with_nothing_missing() {
    let plan = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/disclosure-plan.zh.txt"),
    )
    .expect("plan fixture");
    let mut fonts = FontChain::builtin(BuiltinFont::Wqy16);
    // --strict semantics: every character has a glyph in some font.
    let missing: Vec<char> = plan
        .chars()
        .filter(|c| !c.is_control())
        .filter(|c| fonts.resolve(*c) == Resolved::Missing)
        .collect();
    assert!(missing.is_empty(), "no font has {missing:?}");
    let canvas = Canvas {
        width: 192,
        height: 64,
        zones: Zones::default(),
    };
    let content = Content {
        title: "政务公开示范点意见",
        body: &plan,
        category: "政策文件",
        show: Show::default(),
    };
    let laid = layout(&content, &canvas, &mut fonts).expect("layout");
    assert!(laid.pages.len() > 100, "{} pages", laid.pages.len());
    let paint = Paint {
        format: PixelFormat::Mono,
        width: 192,
        height: 64,
        color: None,
        clock: None,
    };
    for (index, page) in laid.line_texts().iter().enumerate() {
        for line in page {
            assert!(
                !line.starts_with(['，', '。', '、', '：', '；', '！', '？', '）', '”', '》']),
                "page {index}: {line}"
            );
        }
        let frame = render_page(&laid, index, &mut fonts, &paint);
        assert!(frame.data.iter().any(|b| *b != 0), "page {index} is blank");
    }
}

#[test]
fn every_display_and_item_of_the_example_county_renders() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let loaded = gongkai::config::load(&root);
    let model = loaded.model.expect("example county");
    let mut pairs = 0;
    for playlist in &model.playlists {
        for &d in &playlist.targets {
            let display = &model.displays[d];
            let profile = model.profile_of(display);
            let mut fonts =
                gongkai::config::glyphs::load_chain(&profile.font, &root).expect("fonts");
            let canvas = Canvas::of(profile);
            for item in &playlist.items {
                let content = Content::of(item);
                let laid = layout(&content, &canvas, &mut fonts).expect("layout");
                let paint = Paint {
                    format: profile.pixel,
                    width: profile.width,
                    height: profile.height,
                    color: item.color,
                    clock: None,
                };
                let frame = match item.show.mode {
                    ShowMode::Page => render_page(&laid, 0, &mut fonts, &paint),
                    ShowMode::Scroll => {
                        render_strip(&laid, &mut fonts, &paint).frame(laid.body.width)
                    }
                    ShowMode::Roll => {
                        render_strip(&laid, &mut fonts, &paint).frame(laid.body.height)
                    }
                };
                assert_eq!((frame.width, frame.height), (profile.width, profile.height));
                assert!(
                    frame.data.iter().any(|b| *b != 0),
                    "{} on {} is blank",
                    item.id,
                    display.id
                );
                pairs += 1;
            }
        }
    }
    assert!(pairs > 60, "{pairs} pairs");
}
