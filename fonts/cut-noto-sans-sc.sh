#!/bin/sh
# Cuts fonts/NotoSansSC-Regular-gb2312.otf from Debian's fonts-noto-cjk, reproducibly.
# Needs: apt-get (Debian bookworm), dpkg, python3, fonttools (pip install fonttools==4.68.0).
# Run from the repository root: sh fonts/cut-noto-sans-sc.sh
set -eu
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download fonts-noto-cjk=1:20220127+repack1-1 && dpkg -x fonts-noto-cjk_*.deb x)
ttc="$work/x/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"

# The characters: all of GB2312 (its 6,763 hanzi and its symbols), printable ASCII, CJK
# punctuation, full-width forms, general punctuation, and every character of the example
# playlists (so a shipped example never falls back).
python3 - "$work/chars.txt" <<'PY'
import glob, sys
chars = set(chr(c) for c in range(0x20, 0x7F))
for hi in range(0xA1, 0xF8):
    for lo in range(0xA1, 0xFF):
        try:
            chars.add(bytes([hi, lo]).decode("gb2312"))
        except UnicodeDecodeError:
            pass
for lo, hi in [(0x3000, 0x303F), (0xFF00, 0xFFEF), (0x2010, 0x2027), (0x2030, 0x203B), (0x00A0, 0x00FF)]:
    chars.update(chr(c) for c in range(lo, hi + 1))
for path in glob.glob("playlists/*.yaml"):
    with open(path, encoding="utf-8") as f:
        chars.update(c for c in f.read() if ord(c) >= 0x20)
with open(sys.argv[1], "w", encoding="utf-8") as f:
    f.write("".join(sorted(chars)))
PY

# Font number 2 of the collection is Noto Sans CJK SC. Hinting is dropped (gongkai
# rasterises with anti-aliasing and no hinter); the default layout features stay but the
# language-local (JP, KR, TC forms) and vertical ones go; names are kept so the licence and
# copyright travel with the file.
pyftsubset "$ttc" --font-number=2 \
  --text-file="$work/chars.txt" \
  --output-file=fonts/NotoSansSC-Regular-gb2312.otf \
  --layout-features-='locl,vert,vrt2,vkrn,vpal,valt' --no-hinting \
  --name-IDs='*' --name-legacy --name-languages='*' --notdef-outline
