//! Layout: how an item's text falls onto a display's pixels — lines, pages, strip widths.
//!
//! Layout measures; it never draws (that is `raster`'s job) and never does I/O. The schedule
//! uses its page counts and strip widths to know how long an item plays, so it must stay cheap.
//! So far it holds the line-breaking rules; page and strip layout build on them.

pub mod linebreak;
