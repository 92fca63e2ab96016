# A display that "shows" by writing a PBM image: the Unix board's stand-in for the SSD1306.
#
# MONO_HLSB (bit 7 = leftmost pixel of a byte, rows top to bottom) is exactly the bit layout of a
# binary PBM (P4), so show() writes the header and the raw buffer, nothing is converted.
# The file is replaced atomically (tmp + rename) so a reader never sees half a frame.
# PBM says 1 = black; here 1 = a lit pixel. tools/pbm2png.py draws lit pixels light on dark.
import framebuf
import os


class FileDisplay:
    """A 128x64 display; `frames` counts the frames shown."""
    frames = 0

    def __init__(self, path):
        self.path = path
        self.buf = bytearray(128 // 8 * 64)
        self.fb = framebuf.FrameBuffer(self.buf, 128, 64, framebuf.MONO_HLSB)

    def init(self):
        self.fb.fill(0)
        self.show()

    def show(self):
        tmp = self.path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(b"P4\n128 64\n")
            f.write(self.buf)
        os.rename(tmp, self.path)
        self.frames += 1
