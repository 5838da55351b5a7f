//! Previews: board [`Frame`]s drawn the way the physical LED board looks — as a [`Picture`], a
//! PNG or a looping GIF — so that an operator who does not read bitmaps can check a notice
//! before it goes live.
//!
//! This module owns how a preview looks (dot size and gaps, the LED colours, the faint unlit
//! dots, the dark board between them) and the two file formats. It takes finished frames and
//! nothing else: it does no layout, reads no fonts, talks to no board and never changes a frame.
//! It must not smooth, anti-alias or otherwise "improve" what it draws — a preview is only worth
//! looking at if every lit LED in it is lit on the board and nothing else is — and its output is
//! deterministic: the same frames and [`LedLook`] give the same bytes, so previews can be
//! compared and cached.
//!
//! # The look
//!
//! Each board pixel becomes a `scale`×`scale` cell on a near-black board (#0b0b0b). In the cell
//! sits a round dot about 0.8 × `scale` across, so that dark gaps separate the LEDs; at scale 2
//! the dot fills its cell, and scale 1 is a plain pixel copy (for big kiosk screens).
//!
//! | format | lit dot | unlit dot |
//! |---|---|---|
//! | `mono` | the board's LED colour (below) | 10% of the LED colour |
//! | `bicolor` | red, green, or yellow when both planes are lit | 10% of the yellow |
//! | `rgb565`, `rgb888` | the pixel's own colour | dim grey #181818; black pixels are unlit |
//!
//! LED colours: red #ff2a1a, green #20ff40, amber #ffb000, white #f4f4f4, blue #2a6cff; bicolor
//! yellow #ffd81a. At scale 1 unlit pixels are black, so a kiosk frame comes out exactly as it
//! is.

use std::collections::HashMap;
use std::io::Write;
use std::ops::Range;
use std::time::Duration;

use crate::config::model::{LedColor, PixelFormat, Rgb};
use crate::raster::frame::{Frame, Rect};

/// How a preview looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedLook {
    /// Screen pixels per LED, each way. Default 6; below 1 counts as 1, above 32 as 32 (a
    /// bigger LED shows nothing more and only costs memory).
    pub scale: u32,
    /// The colour of lit pixels on a mono board. Bicolor and RGB boards ignore it.
    pub led_color: LedColor,
}

impl Default for LedLook {
    fn default() -> Self {
        LedLook {
            scale: 6,
            led_color: LedColor::Red,
        }
    }
}

/// An RGB picture: 8 bits per channel, rows top to bottom, 3 bytes per pixel.
#[derive(Clone, PartialEq, Eq)]
pub struct Picture {
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
}

impl Picture {
    /// The colour of one pixel; outside the picture: black.
    pub fn pixel(&self, x: u32, y: u32) -> Rgb {
        if x >= self.width || y >= self.height {
            return Rgb(0, 0, 0);
        }
        let i = (y as usize * self.width as usize + x as usize) * 3;
        match self.rgb.get(i..i + 3) {
            Some(&[r, g, b]) => Rgb(r, g, b),
            _ => Rgb(0, 0, 0),
        }
    }
}

impl std::fmt::Debug for Picture {
    // The bytes would drown the output; the size is what a reader wants.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Picture({}x{})", self.width, self.height)
    }
}

/// Why a preview could not be written.
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error("no frames to animate")]
    NoFrames,
    #[error(
        "frame {index} is {width}×{height} pixels but the first frame is \
         {first_width}×{first_height}; an animation needs frames of one size"
    )]
    DifferentSizes {
        index: usize,
        width: u32,
        height: u32,
        first_width: u32,
        first_height: u32,
    },
    #[error("a {width}×{height} frame has no pixels to show")]
    Empty { width: u32, height: u32 },
    #[error("a {width}×{height} {format:?} frame needs {needed} bytes of data but has {actual}")]
    BrokenFrame {
        width: u32,
        height: u32,
        format: PixelFormat,
        needed: usize,
        actual: usize,
    },
    #[error("the preview would be {width}×{height} pixels, more than a GIF can hold (65535×65535)")]
    TooLarge { width: u64, height: u64 },
    #[error("encoding the PNG: {0}")]
    Png(#[from] png::EncodingError),
    #[error("encoding the GIF: {0}")]
    Gif(#[from] gif::EncodingError),
    #[error("writing the preview: {0}")]
    Io(#[from] std::io::Error),
}

/// The board between the dots: not pure black, so that the unlit dots and the gaps both show.
const BACKGROUND: [u8; 3] = [0x0b, 0x0b, 0x0b];
/// Unlit pixels at scale 1, where there is no dot to draw faintly.
const BLACK: [u8; 3] = [0, 0, 0];
const BICOLOR_RED: [u8; 3] = [0xff, 0x2a, 0x1a];
const BICOLOR_GREEN: [u8; 3] = [0x20, 0xff, 0x40];
const BICOLOR_YELLOW: [u8; 3] = [0xff, 0xd8, 0x1a];
/// Largest scale; see [`LedLook::scale`].
const MAX_SCALE: u32 = 32;
/// NeuQuant's speed for RGB frames of more than 256 colours: 10 is the gif crate's advice for a
/// good balance, and previews need not be perfect in colour, only in which LEDs are lit.
const QUANTIZE_SPEED: i32 = 10;

fn led_rgb(color: LedColor) -> [u8; 3] {
    match color {
        LedColor::Red => [0xff, 0x2a, 0x1a],
        LedColor::Green => [0x20, 0xff, 0x40],
        LedColor::Amber => [0xff, 0xb0, 0x00],
        LedColor::White => [0xf4, 0xf4, 0xf4],
        LedColor::Blue => [0x2a, 0x6c, 0xff],
    }
}

/// An unlit LED still shows its tint faintly, like a real board in daylight: 10%, rounded.
fn dim(color: [u8; 3]) -> [u8; 3] {
    color.map(|c| ((u16::from(c) + 5) / 10) as u8)
}

/// The dot of one LED: for each of the `scale` rows of a cell, the columns the dot covers.
/// Computed once per preview, so drawing is filling spans, never a per-pixel test.
struct Dot {
    scale: usize,
    spans: Vec<Range<usize>>,
}

impl Dot {
    /// A crisp disc sampled at pixel centres: exact integer arithmetic, no anti-aliasing, so the
    /// same scale always gives the same dot.
    fn new(scale: u32) -> Dot {
        let s = scale as usize;
        if s <= 2 {
            // Too small for a round dot with a gap around it: fill the cell.
            return Dot {
                scale: s,
                spans: vec![0..s; s],
            };
        }
        // Diameter round(0.8 × s); for s ≥ 3 that leaves at least one pixel of gap, placed
        // the same in every cell, so the gaps between dots are all equal.
        let d = (8 * s + 5) / 10;
        let offset = (s - d) / 2;
        let spans = (0..s)
            .map(|j| {
                if j < offset || j >= offset + d {
                    return 0..0;
                }
                // Pixel centres and radius in half-pixels: (2i + 1 − d)² + (2j + 1 − d)² ≤ d².
                let centre = |i: usize| (2 * i + 1).abs_diff(d);
                let dy = centre(j - offset);
                match (0..d).position(|i| centre(i).pow(2) + dy.pow(2) <= d * d) {
                    // The disc is symmetric, so the span ends as far from the right edge as it
                    // starts from the left.
                    Some(first) => offset + first..offset + d - first,
                    None => 0..0,
                }
            })
            .collect();
        Dot { scale: s, spans }
    }

    /// Scale 1 is a plain copy: no dots, no faint unlit LEDs, no board showing between them.
    fn plain(&self) -> bool {
        self.scale == 1
    }

    /// Paints one board row: `dots` (one value per board pixel) into `scale` rows of `band`.
    fn paint_band<T: Copy>(&self, dots: &[T], background: T, band: &mut [T]) {
        let s = self.scale;
        let width = dots.len() * s;
        if s == 1 {
            band.copy_from_slice(dots);
            return;
        }
        for (j, span) in self.spans.iter().enumerate() {
            if j > 0 && self.spans[j - 1] == *span {
                // A disc has runs of equal rows (and the gap rows are equal): copy, don't redo.
                band.copy_within((j - 1) * width..j * width, j * width);
                continue;
            }
            let row = &mut band[j * width..(j + 1) * width];
            if span.len() < s {
                row.fill(background);
            }
            if !span.is_empty() {
                for (cell, &dot) in row.chunks_exact_mut(s).zip(dots) {
                    cell[span.clone()].fill(dot);
                }
            }
        }
    }
}

/// A look resolved for drawing: the dot for the scale and the colours for the LED colour.
struct Style {
    dot: Dot,
    led: [u8; 3],
}

impl Style {
    fn new(frame: &Frame, look: &LedLook) -> Style {
        let mut scale = look.scale.clamp(1, MAX_SCALE);
        // Keep the picture's size within u32, so every size below is computed without overflow.
        let longest = frame.width.max(frame.height).max(1);
        scale = scale.min(u32::MAX / longest).max(1);
        Style {
            dot: Dot::new(scale),
            led: led_rgb(look.led_color),
        }
    }

    fn scale(&self) -> u32 {
        self.dot.scale as u32
    }

    fn unlit(&self, color: [u8; 3]) -> [u8; 3] {
        if self.dot.plain() { BLACK } else { dim(color) }
    }

    /// The colours a mono or bicolor frame can show: index 0 the board between the dots, 1 an
    /// unlit dot, then the lit colours (see [`fixed_index`]). `None` for RGB frames.
    fn fixed_palette(&self, format: PixelFormat) -> Option<Vec<[u8; 3]>> {
        match format {
            PixelFormat::Mono => Some(vec![BACKGROUND, self.unlit(self.led), self.led]),
            PixelFormat::Bicolor => Some(vec![
                BACKGROUND,
                self.unlit(BICOLOR_YELLOW),
                BICOLOR_RED,
                BICOLOR_GREEN,
                BICOLOR_YELLOW,
            ]),
            PixelFormat::Rgb565 | PixelFormat::Rgb888 => None,
        }
    }

    /// The colour of an RGB board's dot.
    fn rgb_dot(&self, pixel: Rgb) -> [u8; 3] {
        match pixel {
            Rgb(0, 0, 0) => self.unlit(led_rgb(LedColor::White)),
            Rgb(r, g, b) => [r, g, b],
        }
    }
}

/// A mono or bicolor pixel's index in [`Style::fixed_palette`]. `Frame::pixel` reads lit mono
/// pixels as white and bicolor ones as red, green or yellow.
fn fixed_index(format: PixelFormat, pixel: Rgb) -> u8 {
    let Rgb(r, g, _) = pixel;
    match format {
        PixelFormat::Bicolor => 1 + u8::from(r > 0) + 2 * u8::from(g > 0),
        _ => 1 + u8::from(r > 0),
    }
}

/// Draws `region` of a frame (in board pixels), rows top to bottom, `scale`² values per board
/// pixel; `dot_of(x, y)` gives a board pixel's value (a colour, or a palette index).
fn render<T: Copy>(
    region: Rect,
    dot: &Dot,
    background: T,
    mut dot_of: impl FnMut(u32, u32) -> T,
) -> Vec<T> {
    let s = dot.scale;
    let band_len = region.width as usize * s * s;
    let mut out = vec![background; band_len * region.height as usize];
    let mut dots = Vec::with_capacity(region.width as usize);
    for (y, band) in (region.y..region.y + region.height).zip(out.chunks_exact_mut(band_len)) {
        dots.clear();
        dots.extend((region.x..region.x + region.width).map(|x| dot_of(x, y)));
        dot.paint_band(&dots, background, band);
    }
    out
}

/// The RGB colour of each board pixel's dot, for [`render`].
fn rgb_dot_of<'f>(frame: &'f Frame, style: &'f Style) -> impl FnMut(u32, u32) -> [u8; 3] + 'f {
    let palette = style.fixed_palette(frame.format);
    move |x, y| {
        let pixel = frame.pixel(x, y);
        match &palette {
            Some(palette) => palette[usize::from(fixed_index(frame.format, pixel))],
            None => style.rgb_dot(pixel),
        }
    }
}

fn whole(frame: &Frame) -> Rect {
    Rect {
        x: 0,
        y: 0,
        width: frame.width,
        height: frame.height,
    }
}

/// The picture of a frame as the board shows it (see the module docs for the look).
///
/// # Panics
///
/// If `frame.data` is shorter than the frame's size and format need — a broken [`Frame`];
/// [`write_png`] and [`write_gif`] check for that and return an error instead.
pub fn led_picture(frame: &Frame, look: &LedLook) -> Picture {
    let style = Style::new(frame, look);
    let rgb = render(
        whole(frame),
        &style.dot,
        BACKGROUND,
        rgb_dot_of(frame, &style),
    );
    Picture {
        width: frame.width * style.scale(),
        height: frame.height * style.scale(),
        rgb: rgb.into_flattened(),
    }
}

/// Checks what `Frame::pixel` relies on, so that a broken frame is an error, not a panic.
fn check_frame(frame: &Frame) -> Result<(), PreviewError> {
    if frame.width == 0 || frame.height == 0 {
        return Err(PreviewError::Empty {
            width: frame.width,
            height: frame.height,
        });
    }
    let needed = frame.plane_len() * frame.planes();
    if frame.data.len() < needed {
        return Err(PreviewError::BrokenFrame {
            width: frame.width,
            height: frame.height,
            format: frame.format,
            needed,
            actual: frame.data.len(),
        });
    }
    Ok(())
}

/// Writes the frame's preview as an 8-bit RGB PNG.
///
/// The picture is drawn and compressed one board row at a time, so a big board at a big scale
/// needs memory for one row of LEDs, not for the whole picture.
pub fn write_png(frame: &Frame, look: &LedLook, mut out: impl Write) -> Result<(), PreviewError> {
    check_frame(frame)?;
    let style = Style::new(frame, look);
    let mut encoder = png::Encoder::new(
        &mut out,
        frame.width * style.scale(),
        frame.height * style.scale(),
    );
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    let mut stream = writer.stream_writer()?;
    let mut dot_of = rgb_dot_of(frame, &style);
    let mut dots = Vec::with_capacity(frame.width as usize);
    let mut band = vec![BACKGROUND; frame.width as usize * style.dot.scale * style.dot.scale];
    for y in 0..frame.height {
        dots.clear();
        dots.extend((0..frame.width).map(|x| dot_of(x, y)));
        style.dot.paint_band(&dots, BACKGROUND, &mut band);
        stream.write_all(band.as_flattened())?;
    }
    stream.finish()?;
    writer.finish()?;
    // Encoders write through `out` but leave buffering writers (a BufWriter on a file) to us.
    out.flush()?;
    Ok(())
}

/// GIF delays are in centiseconds: round to the nearest, and show at least 2 cs, because
/// browsers play 0 and 1 cs as 10 cs — a shorter delay would make the animation slower, not
/// faster. Delays longer than the format's 655.35 s are shown for 655.35 s.
fn centiseconds(delay: Duration) -> u16 {
    let cs = (delay.as_micros() + 5_000) / 10_000;
    u16::try_from(cs).unwrap_or(u16::MAX).max(2)
}

/// The bounding box of what changed since the previous frame, in board pixels: later GIF frames
/// only redraw that, which keeps a page of text with a ticking clock small. A frame equal to the
/// previous one redraws a single LED, because it still needs a GIF frame for its delay.
fn changed_region(previous: &Frame, frame: &Frame) -> Rect {
    let rects = previous.diff(frame);
    let Some(first) = rects.first() else {
        return Rect {
            x: 0,
            y: 0,
            width: 1,
            height: 1,
        };
    };
    let (mut x0, mut y0) = (first.x, first.y);
    let (mut x1, mut y1) = (first.x + first.width, first.y + first.height);
    for r in &rects {
        x0 = x0.min(r.x);
        y0 = y0.min(r.y);
        x1 = x1.max(r.x + r.width);
        y1 = y1.max(r.y + r.height);
    }
    Rect {
        x: x0,
        y: y0,
        width: x1 - x0,
        height: y1 - y0,
    }
}

/// A GIF frame for a region of an RGB frame. With at most 256 colours (dots, unlit dots and the
/// board between them together) the palette is exact and built from the board pixels, so it
/// costs one look-up per LED; beyond that the drawn region is quantized.
fn rgb_gif_frame(
    frame: &Frame,
    region: Rect,
    style: &Style,
    width: u16,
    height: u16,
) -> gif::Frame<'static> {
    let mut palette: Vec<[u8; 3]> = vec![BACKGROUND, style.rgb_dot(Rgb(0, 0, 0))];
    let mut index_of: HashMap<[u8; 3], u8> = HashMap::from([(palette[0], 0), (palette[1], 1)]);
    // Indices are handed out in scan order, never in the map's (random) order: same bytes every
    // time.
    let mut indices = Vec::with_capacity(region.width as usize * region.height as usize);
    let mut last: Option<([u8; 3], u8)> = None;
    'scan: for y in region.y..region.y + region.height {
        for x in region.x..region.x + region.width {
            let color = style.rgb_dot(frame.pixel(x, y));
            // Runs of one colour are the rule on a board (text on a plain ground).
            if let Some((last_color, index)) = last
                && last_color == color
            {
                indices.push(index);
                continue;
            }
            let index = match index_of.get(&color) {
                Some(&index) => index,
                None => match u8::try_from(palette.len()) {
                    Ok(index) => {
                        palette.push(color);
                        index_of.insert(color, index);
                        index
                    }
                    Err(_) => break 'scan,
                },
            };
            indices.push(index);
            last = Some((color, index));
        }
    }
    if indices.len() < region.width as usize * region.height as usize {
        // More than 256 colours: draw the region and let NeuQuant choose the palette.
        let rgb = render(region, &style.dot, BACKGROUND, |x, y| {
            style.rgb_dot(frame.pixel(x, y))
        });
        return gif::Frame::from_rgb_speed(width, height, rgb.as_flattened(), QUANTIZE_SPEED);
    }
    let stride = region.width as usize;
    let pixels = render(region, &style.dot, 0u8, |x, y| {
        let i = (y - region.y) as usize * stride + (x - region.x) as usize;
        indices.get(i).copied().unwrap_or(0)
    });
    gif::Frame::from_palette_pixels(width, height, pixels, palette.as_flattened(), None)
}

/// Writes an animated GIF of the frames, looping forever; each frame is shown for its delay
/// (rounded to centiseconds, at least 20 ms; see [`centiseconds`]).
///
/// Mono and bicolor frames use a small fixed palette, so they are exact and tiny; RGB frames get
/// a palette of their own colours, quantized when there are more than 256. The frames are
/// checked (some, one size, not too big for a GIF) before anything is written; an encoding or
/// writing error can leave a partial file behind.
pub fn write_gif<'a>(
    frames: impl IntoIterator<Item = (&'a Frame, Duration)>,
    look: &LedLook,
    mut out: impl Write,
) -> Result<(), PreviewError> {
    let frames: Vec<(&Frame, Duration)> = frames.into_iter().collect();
    let Some(&(first, _)) = frames.first() else {
        return Err(PreviewError::NoFrames);
    };
    for (index, (frame, _)) in frames.iter().enumerate() {
        if (frame.width, frame.height) != (first.width, first.height) {
            return Err(PreviewError::DifferentSizes {
                index,
                width: frame.width,
                height: frame.height,
                first_width: first.width,
                first_height: first.height,
            });
        }
        check_frame(frame)?;
    }
    let style = Style::new(first, look);
    let scale = style.scale();
    // GIF sizes and offsets are u16; everything below lies inside the picture, so once its
    // size fits, every conversion does.
    let gif_size = |board_pixels: u32| {
        u16::try_from(board_pixels * scale).map_err(|_| PreviewError::TooLarge {
            width: u64::from(first.width) * u64::from(scale),
            height: u64::from(first.height) * u64::from(scale),
        })
    };
    let width = gif_size(first.width)?;
    let height = gif_size(first.height)?;

    // The first frame's fixed palette is global; RGB frames, and fixed-palette frames of another
    // format, bring their own.
    let global = style.fixed_palette(first.format).unwrap_or_default();
    let mut encoder = gif::Encoder::new(&mut out, width, height, global.as_flattened())?;
    encoder.set_repeat(gif::Repeat::Infinite)?;
    let mut previous: Option<&Frame> = None;
    for (frame, delay) in frames {
        let region = match previous {
            Some(previous) => changed_region(previous, frame),
            None => whole(frame),
        };
        let (region_width, region_height) = (gif_size(region.width)?, gif_size(region.height)?);
        let mut gif_frame = match style.fixed_palette(frame.format) {
            Some(palette) => {
                let pixels = render(region, &style.dot, 0u8, |x, y| {
                    fixed_index(frame.format, frame.pixel(x, y))
                });
                let local = (frame.format != first.format).then(|| palette.as_flattened().to_vec());
                gif::Frame {
                    width: region_width,
                    height: region_height,
                    buffer: pixels.into(),
                    palette: local,
                    ..gif::Frame::default()
                }
            }
            None => rgb_gif_frame(frame, region, &style, region_width, region_height),
        };
        gif_frame.left = gif_size(region.x)?;
        gif_frame.top = gif_size(region.y)?;
        gif_frame.delay = centiseconds(delay);
        // Later frames cover only what changed: keep what was there.
        gif_frame.dispose = gif::DisposalMethod::Keep;
        encoder.write_frame(&gif_frame)?;
        previous = Some(frame);
    }
    encoder.into_inner()?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_LEDS: [LedColor; 5] = [
        LedColor::Red,
        LedColor::Green,
        LedColor::Amber,
        LedColor::White,
        LedColor::Blue,
    ];

    fn look(scale: u32, led_color: LedColor) -> LedLook {
        LedLook { scale, led_color }
    }

    /// A frame with the given pixels set.
    fn frame_with(width: u32, height: u32, format: PixelFormat, lit: &[(u32, u32, Rgb)]) -> Frame {
        let mut frame = Frame::new(width, height, format);
        for &(x, y, color) in lit {
            frame.set_pixel(x, y, color);
        }
        frame
    }

    fn png_bytes(frame: &Frame, look: &LedLook) -> Vec<u8> {
        let mut bytes = Vec::new();
        write_png(frame, look, &mut bytes).expect("writing to a Vec");
        bytes
    }

    /// Decodes a PNG written by `write_png` into a picture, checking it is 8-bit RGB.
    fn decode_png(bytes: &[u8]) -> Picture {
        let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
            .read_info()
            .expect("a valid PNG");
        let mut rgb = vec![0; reader.output_buffer_size().expect("a sane size")];
        let info = reader.next_frame(&mut rgb).expect("image data");
        assert_eq!(
            (info.color_type, info.bit_depth),
            (png::ColorType::Rgb, png::BitDepth::Eight)
        );
        rgb.truncate(info.buffer_size());
        Picture {
            width: info.width,
            height: info.height,
            rgb,
        }
    }

    fn rgb(color: [u8; 3]) -> Rgb {
        Rgb(color[0], color[1], color[2])
    }

    /// The centre of board pixel (x, y)'s cell, and the last pixel of the cell (in the gap).
    fn centre(x: u32, y: u32, scale: u32) -> (u32, u32) {
        (x * scale + scale / 2, y * scale + scale / 2)
    }
    fn gap(x: u32, y: u32, scale: u32) -> (u32, u32) {
        (x * scale + scale - 1, y * scale + scale - 1)
    }

    #[track_caller]
    fn assert_at(picture: &Picture, (x, y): (u32, u32), expected: [u8; 3]) {
        assert_eq!(picture.pixel(x, y), rgb(expected), "picture pixel {x},{y}");
    }

    #[test]
    fn dot_shapes_are_round_with_gaps() {
        // Scale 6: a 5-pixel disc with a 1-pixel gap to the right and below.
        let art: Vec<String> = Dot::new(6)
            .spans
            .iter()
            .map(|span| {
                (0..6)
                    .map(|i| if span.contains(&i) { '#' } else { '.' })
                    .collect()
            })
            .collect();
        assert_eq!(
            art,
            [".###..", "#####.", "#####.", "#####.", ".###..", "......"]
        );
        for scale in 1..=MAX_SCALE {
            let dot = Dot::new(scale);
            let s = scale as usize;
            assert_eq!(dot.spans.len(), s);
            if s <= 2 {
                assert!(
                    dot.spans.iter().all(|span| *span == (0..s)),
                    "scale {s} fills its cell"
                );
                continue;
            }
            // Dark gaps: the last row and column of every cell stay board-coloured.
            assert!(dot.spans[s - 1].is_empty(), "scale {s}");
            assert!(dot.spans.iter().all(|span| span.end < s), "scale {s}");
            // About 0.8 × scale across, each way.
            let across = dot.spans.iter().map(|span| span.len()).max().unwrap_or(0);
            let down = dot.spans.iter().filter(|span| !span.is_empty()).count();
            assert_eq!(across, down, "scale {s}");
            assert!(
                across.abs_diff(s * 8 / 10) <= 1,
                "scale {s}: {across} across"
            );
        }
    }

    #[test]
    fn png_of_a_mono_board_shows_lit_and_unlit_dots() {
        for led_color in [LedColor::Red, LedColor::Amber] {
            let frame = frame_with(4, 3, PixelFormat::Mono, &[(1, 1, Rgb(255, 255, 255))]);
            let picture = decode_png(&png_bytes(&frame, &look(6, led_color)));
            assert_eq!((picture.width, picture.height), (24, 18));
            let led = led_rgb(led_color);
            assert_at(&picture, centre(1, 1, 6), led);
            assert_at(&picture, gap(1, 1, 6), BACKGROUND);
            assert_at(&picture, (6, 6), BACKGROUND); // the lit cell's top-left corner
            assert_at(&picture, centre(0, 0, 6), dim(led));
            assert_at(&picture, centre(3, 2, 6), dim(led));
        }
        assert_eq!(led_rgb(LedColor::Red), [0xff, 0x2a, 0x1a]);
        assert_eq!(led_rgb(LedColor::Amber), [0xff, 0xb0, 0x00]);
        assert_eq!(dim(led_rgb(LedColor::Red)), [26, 4, 3]);
    }

    #[test]
    fn every_led_colour_differs_from_its_unlit_dot_and_the_board() {
        for led_color in ALL_LEDS {
            let led = led_rgb(led_color);
            assert_ne!(dim(led), BACKGROUND, "{led_color:?}");
            assert_ne!(dim(led), led, "{led_color:?}");
        }
    }

    #[test]
    fn png_of_a_bicolor_board() {
        let frame = frame_with(
            4,
            1,
            PixelFormat::Bicolor,
            &[
                (0, 0, Rgb(255, 0, 0)),
                (1, 0, Rgb(0, 255, 0)),
                (2, 0, Rgb(255, 255, 0)),
            ],
        );
        // Yellow is both planes lit.
        assert_eq!(frame.data, vec![0b1010_0000, 0b0110_0000]);
        let picture = decode_png(&png_bytes(&frame, &look(8, LedColor::Blue)));
        assert_eq!((picture.width, picture.height), (32, 8));
        assert_at(&picture, centre(0, 0, 8), BICOLOR_RED);
        assert_at(&picture, centre(1, 0, 8), BICOLOR_GREEN);
        assert_at(&picture, centre(2, 0, 8), BICOLOR_YELLOW);
        assert_at(&picture, centre(3, 0, 8), dim(BICOLOR_YELLOW));
        assert_at(&picture, gap(2, 0, 8), BACKGROUND);
    }

    #[test]
    fn png_of_rgb_boards_shows_each_pixels_colour() {
        for format in [PixelFormat::Rgb565, PixelFormat::Rgb888] {
            let orange = Rgb(250, 120, 40);
            let frame = frame_with(
                3,
                2,
                format,
                &[
                    (0, 0, Rgb(255, 0, 255)),
                    (1, 0, orange),
                    (2, 1, Rgb(0, 0, 255)),
                ],
            );
            let picture = decode_png(&png_bytes(&frame, &look(5, LedColor::Red)));
            assert_eq!((picture.width, picture.height), (15, 10));
            assert_eq!(
                picture.pixel(centre(0, 0, 5).0, centre(0, 0, 5).1),
                Rgb(255, 0, 255)
            );
            // Rgb565 keeps 5-6-5 bits: the dot shows what the board shows, not what was asked.
            assert_eq!(
                picture.pixel(centre(1, 0, 5).0, 2),
                frame.pixel(1, 0),
                "{format:?}"
            );
            assert_at(&picture, centre(2, 1, 5), [0, 0, 255]);
            assert_at(&picture, centre(0, 1, 5), [0x18, 0x18, 0x18]);
            assert_at(&picture, gap(0, 0, 5), BACKGROUND);
        }
    }

    #[test]
    fn led_picture_is_what_the_png_holds() {
        let frame = frame_with(
            9,
            4,
            PixelFormat::Rgb888,
            &[
                (0, 0, Rgb(1, 2, 3)),
                (8, 3, Rgb(200, 100, 0)),
                (4, 2, Rgb(9, 9, 9)),
            ],
        );
        for scale in [1, 2, 3, 6, 11] {
            let look = look(scale, LedColor::Green);
            assert_eq!(
                led_picture(&frame, &look),
                decode_png(&png_bytes(&frame, &look))
            );
        }
    }

    #[test]
    fn scale_is_kept_between_1_and_32() {
        let frame = frame_with(2, 1, PixelFormat::Mono, &[(0, 0, Rgb(255, 255, 255))]);
        let picture = led_picture(&frame, &look(0, LedColor::Red));
        assert_eq!((picture.width, picture.height), (2, 1));
        let picture = led_picture(&frame, &look(1000, LedColor::Red));
        assert_eq!((picture.width, picture.height), (64, 32));
        assert_eq!(LedLook::default(), look(6, LedColor::Red));
    }

    #[test]
    fn scale_1_is_a_plain_copy() {
        let frame = frame_with(3, 1, PixelFormat::Mono, &[(1, 0, Rgb(255, 255, 255))]);
        let picture = led_picture(&frame, &look(1, LedColor::Amber));
        assert_eq!(picture.rgb, [0, 0, 0, 0xff, 0xb0, 0x00, 0, 0, 0]);
    }

    #[test]
    fn a_kiosk_frame_at_scale_1_is_a_png_of_its_size() {
        let mut frame = Frame::new(1080, 1920, PixelFormat::Rgb888);
        for (i, byte) in frame.data.iter_mut().enumerate() {
            *byte = (i % 251) as u8;
        }
        let picture = decode_png(&png_bytes(&frame, &look(1, LedColor::Red)));
        assert_eq!((picture.width, picture.height), (1080, 1920));
        assert_eq!(picture.rgb, frame.data);
    }

    /// A decoded GIF: the canvas after each frame, with the frame's delay.
    struct Gif {
        width: u32,
        height: u32,
        repeat: gif::Repeat,
        global_palette_len: usize,
        /// Entries in each frame's own palette (0: uses the global one).
        local_palette_lens: Vec<usize>,
        frames: Vec<(Picture, u16)>,
    }

    fn decode_gif(bytes: &[u8]) -> Gif {
        let mut options = gif::DecodeOptions::new();
        options.set_color_output(gif::ColorOutput::Indexed);
        let mut decoder = options.read_info(bytes).expect("a valid GIF");
        let (width, height) = (u32::from(decoder.width()), u32::from(decoder.height()));
        let global = decoder
            .global_palette()
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        let mut canvas = Picture {
            width,
            height,
            rgb: vec![0; width as usize * height as usize * 3],
        };
        let mut frames = Vec::new();
        let mut local_palette_lens = Vec::new();
        while let Some(frame) = decoder.read_next_frame().expect("a valid frame") {
            local_palette_lens.push(frame.palette.as_ref().map_or(0, |p| p.len() / 3));
            let palette = frame.palette.as_deref().unwrap_or(&global);
            for (i, &index) in frame.buffer.iter().enumerate() {
                let x = u32::from(frame.left) + i as u32 % u32::from(frame.width);
                let y = u32::from(frame.top) + i as u32 / u32::from(frame.width);
                let at = (y * width + x) as usize * 3;
                let color = usize::from(index) * 3;
                canvas.rgb[at..at + 3].copy_from_slice(&palette[color..color + 3]);
            }
            frames.push((canvas.clone(), frame.delay));
        }
        Gif {
            width,
            height,
            repeat: decoder.repeat(),
            global_palette_len: global.len(),
            local_palette_lens,
            frames,
        }
    }

    fn gif_bytes<'a>(
        frames: impl IntoIterator<Item = (&'a Frame, Duration)>,
        look: &LedLook,
    ) -> Vec<u8> {
        let mut bytes = Vec::new();
        write_gif(frames, look, &mut bytes).expect("writing to a Vec");
        bytes
    }

    #[test]
    fn gif_of_a_mono_board_loops_with_its_delays() {
        let white = Rgb(255, 255, 255);
        let one = frame_with(8, 4, PixelFormat::Mono, &[(0, 0, white)]);
        let two = frame_with(8, 4, PixelFormat::Mono, &[(0, 0, white), (5, 2, white)]);
        let frames = [
            (&one, Duration::from_millis(125)),
            (&two, Duration::from_millis(5)),
            (&two, Duration::from_secs(3)),
        ];
        let gif = decode_gif(&gif_bytes(frames, &look(6, LedColor::Amber)));
        assert_eq!((gif.width, gif.height), (48, 24));
        assert_eq!(gif.repeat, gif::Repeat::Infinite);
        // bg, unlit, lit: a 4-entry palette.
        assert_eq!(gif.global_palette_len, 4 * 3);
        let delays: Vec<u16> = gif.frames.iter().map(|(_, delay)| *delay).collect();
        assert_eq!(delays, [13, 2, 300]);
        let amber = led_rgb(LedColor::Amber);
        let (first, second) = (&gif.frames[0].0, &gif.frames[1].0);
        assert_at(first, centre(5, 2, 6), dim(amber));
        assert_at(second, centre(5, 2, 6), amber);
        assert_at(second, centre(0, 0, 6), amber);
        assert_at(second, gap(5, 2, 6), BACKGROUND);
        assert_at(second, centre(7, 3, 6), dim(amber));
        // Each frame is the PNG's picture.
        for ((picture, _), (frame, _)) in gif.frames.iter().zip(frames) {
            assert_eq!(*picture, led_picture(frame, &look(6, LedColor::Amber)));
        }
    }

    #[test]
    fn gif_of_bicolor_and_rgb_boards_is_exact_up_to_256_colours() {
        let mut frames = vec![
            frame_with(4, 2, PixelFormat::Bicolor, &[(1, 1, Rgb(255, 255, 0))]),
            frame_with(4, 2, PixelFormat::Rgb565, &[(2, 0, Rgb(0, 255, 0))]),
        ];
        // 250 colours: still exact.
        let mut many = Frame::new(25, 10, PixelFormat::Rgb888);
        for i in 0..250 {
            many.set_pixel(i % 25, i / 25, Rgb(i as u8, 255 - i as u8, 7));
        }
        let look = look(3, LedColor::Red);
        for frame in &frames {
            let gif = decode_gif(&gif_bytes([(frame, Duration::from_secs(1))], &look));
            assert_eq!(gif.frames.len(), 1);
            assert_eq!(gif.frames[0].0, led_picture(frame, &look), "{frame:?}");
        }
        let gif = decode_gif(&gif_bytes([(&many, Duration::from_secs(1))], &look));
        assert_eq!(gif.frames[0].0, led_picture(&many, &look));
        // Frames of different formats in one animation each keep their colours.
        frames.push(frame_with(
            4,
            2,
            PixelFormat::Mono,
            &[(3, 1, Rgb(255, 255, 255))],
        ));
        let gif = decode_gif(&gif_bytes(
            frames.iter().map(|f| (f, Duration::from_secs(1))),
            &look,
        ));
        for ((picture, _), frame) in gif.frames.iter().zip(&frames) {
            assert_eq!(*picture, led_picture(frame, &look), "{frame:?}");
        }
    }

    #[test]
    fn gif_palette_of_an_rgb_board_holds_only_its_colours() {
        let frame = frame_with(
            6,
            2,
            PixelFormat::Rgb888,
            &[(0, 0, Rgb(9, 200, 9)), (5, 1, Rgb(200, 9, 9))],
        );
        let gif = decode_gif(&gif_bytes(
            [(&frame, Duration::from_secs(1))],
            &look(6, LedColor::Red),
        ));
        // Board, unlit dot and the two colours: nothing twice, nothing else.
        assert_eq!(gif.local_palette_lens, [4]);
    }

    #[test]
    fn gif_of_a_photo_is_quantized() {
        let mut photo = Frame::new(40, 30, PixelFormat::Rgb888);
        for y in 0..30 {
            for x in 0..40 {
                photo.set_pixel(x, y, Rgb(x as u8 * 6, y as u8 * 8, 128));
            }
        }
        let look = look(4, LedColor::Red);
        let gif = decode_gif(&gif_bytes([(&photo, Duration::from_millis(500))], &look));
        let (picture, delay) = &gif.frames[0];
        assert_eq!((picture.width, picture.height, *delay), (160, 120, 50));
        let exact = led_picture(&photo, &look);
        let Rgb(r, g, b) = picture.pixel(22 * 4 + 2, 13 * 4 + 2);
        let Rgb(er, eg, eb) = exact.pixel(22 * 4 + 2, 13 * 4 + 2);
        assert!(
            r.abs_diff(er) + g.abs_diff(eg) + b.abs_diff(eb) < 48,
            "{r},{g},{b}"
        );
        // The same frames give the same bytes.
        let again = gif_bytes([(&photo, Duration::from_millis(500))], &look);
        assert_eq!(
            again,
            gif_bytes([(&photo, Duration::from_millis(500))], &look)
        );
    }

    #[test]
    fn gif_delays_round_to_centiseconds_of_at_least_2() {
        let cs = |ms| centiseconds(Duration::from_millis(ms));
        assert_eq!(
            [cs(0), cs(5), cs(14), cs(15), cs(125), cs(8000)],
            [2, 2, 2, 2, 13, 800]
        );
        assert_eq!(cs(24), 2);
        assert_eq!(cs(25), 3);
        assert_eq!(centiseconds(Duration::from_secs(100_000)), u16::MAX);
    }

    #[test]
    fn unchanged_and_partly_changed_frames_redraw_only_what_changed() {
        let a = Frame::new(64, 16, PixelFormat::Mono);
        let b = frame_with(64, 16, PixelFormat::Mono, &[(40, 3, Rgb(255, 255, 255))]);
        assert_eq!(
            changed_region(&a, &a),
            Rect {
                x: 0,
                y: 0,
                width: 1,
                height: 1
            }
        );
        let region = changed_region(&a, &b);
        assert!(
            region.x <= 40 && region.x + region.width > 40 && region.width <= 8,
            "{region:?}"
        );
        let look = look(6, LedColor::Red);
        let frames = [
            (&a, Duration::from_secs(1)),
            (&b, Duration::from_secs(1)),
            (&b, Duration::from_secs(1)),
        ];
        let gif = decode_gif(&gif_bytes(frames, &look));
        assert_eq!(gif.frames.len(), 3);
        assert_eq!(gif.frames[2].0, led_picture(&b, &look));
    }

    #[test]
    fn errors_leave_the_output_untouched() {
        let look = LedLook::default();
        let mut out = Vec::new();
        let none: [(&Frame, Duration); 0] = [];
        assert!(matches!(
            write_gif(none, &look, &mut out),
            Err(PreviewError::NoFrames)
        ));

        let small = Frame::new(8, 8, PixelFormat::Mono);
        let big = Frame::new(16, 8, PixelFormat::Mono);
        let frames = [
            (&small, Duration::from_secs(1)),
            (&big, Duration::from_secs(1)),
        ];
        let error = write_gif(frames, &look, &mut out).expect_err("sizes differ");
        assert!(matches!(
            error,
            PreviewError::DifferentSizes {
                index: 1,
                width: 16,
                ..
            }
        ));
        assert!(error.to_string().contains("16×8"), "{error}");

        let wide = Frame::new(11_000, 1, PixelFormat::Mono);
        let error = write_gif([(&wide, Duration::from_secs(1))], &look, &mut out);
        assert!(matches!(
            error,
            Err(PreviewError::TooLarge {
                width: 66_000,
                height: 6
            })
        ));

        let mut broken = Frame::new(8, 8, PixelFormat::Rgb888);
        broken.data.truncate(10);
        assert!(matches!(
            write_png(&broken, &look, &mut out),
            Err(PreviewError::BrokenFrame { .. })
        ));
        let empty = Frame::new(0, 8, PixelFormat::Mono);
        assert!(matches!(
            write_png(&empty, &look, &mut out),
            Err(PreviewError::Empty { .. })
        ));
        assert!(out.is_empty());
    }

    #[test]
    fn writer_errors_are_returned() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::Error::new(
                    std::io::ErrorKind::StorageFull,
                    "disk full",
                ))
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let frame = Frame::new(8, 8, PixelFormat::Mono);
        let look = LedLook::default();
        assert!(write_png(&frame, &look, Full).is_err());
        assert!(write_gif([(&frame, Duration::from_secs(1))], &look, Full).is_err());
    }
}
