"""Read a QR code back the way a phone's WireGuard app would."""

from __future__ import annotations

from pathlib import Path

import zxingcpp
from PIL import Image

QR_ONLY = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)


def qr_texts(png: Path) -> list[str]:
    """The text of every QR code in `png`.

    Only QR codes are looked for: a phone's camera scans for nothing else, and a search across
    every format can find a spurious 1-D barcode in a QR code's modules.
    """
    with Image.open(png) as image:
        found = zxingcpp.read_barcodes(image, formats=QR_ONLY)
    return [code.text for code in found]
