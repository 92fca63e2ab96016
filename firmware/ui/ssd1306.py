# Driver for a 128x64 (or 128x32) SSD1306 OLED on I2C.
#
# The whole screen lives in one preallocated MONO_VLSB framebuffer (one byte = 8 vertical pixels,
# the controller's own page layout), so show() is a single I2C transfer with no conversion.
# Command values are from the Solomon Systech SSD1306 datasheet rev 1.1, section 10 (command
# descriptions) and the application note's power-on sequence.
from micropython import const
import framebuf

_SET_CONTRAST = const(0x81)
_ENTIRE_ON_RESUME = const(0xA4)   # show RAM content (0xA5 would light every pixel)
_NORM_DISPLAY = const(0xA6)       # 0xA7 inverts
_DISPLAY_OFF = const(0xAE)
_DISPLAY_ON = const(0xAF)
_MEM_ADDR_MODE = const(0x20)      # followed by 0 = horizontal addressing
_COL_ADDR = const(0x21)           # followed by start, end column
_PAGE_ADDR = const(0x22)          # followed by start, end page
_START_LINE = const(0x40)
_SEG_REMAP_127 = const(0xA1)      # column 127 mapped to SEG0: the usual module orientation
_MUX_RATIO = const(0xA8)
_COM_SCAN_DEC = const(0xC8)       # scan COM[N-1] -> COM0 (flipped vertically, as modules expect)
_DISPLAY_OFFSET = const(0xD3)
_COM_PINS = const(0xDA)
_CLOCK_DIV = const(0xD5)
_PRECHARGE = const(0xD9)
_VCOM_DESEL = const(0xDB)
_CHARGE_PUMP = const(0x8D)

_CTRL_CMD = const(0x80)           # control byte: one command byte follows (Co=1, D/C#=0)
_CTRL_DATA = const(0x40)          # control byte: the rest of the transfer is display RAM data

ADDR = const(0x3C)                # 0x3D when the module's address jumper is moved


class SSD1306:
    """`i2c` needs writeto(addr, buf) and writevto(addr, bufs) (machine.I2C or a test double).
    Draw on `.fb` (a framebuf.FrameBuffer), then call show()."""

    def __init__(self, i2c, width=128, height=64, addr=ADDR, external_vcc=False):
        self.i2c = i2c
        self.addr = addr
        self.width = width
        self.height = height
        self.external_vcc = external_vcc
        self.pages = height // 8
        self.buf = bytearray(width * self.pages)
        self.fb = framebuf.FrameBuffer(self.buf, width, height, framebuf.MONO_VLSB)
        self._cmd = bytearray(2)      # reused for every command byte: no allocation per call
        self._cmd[0] = _CTRL_CMD
        self._data_prefix = bytearray((_CTRL_DATA,))
        self._vec = [self._data_prefix, self.buf]

    def cmd(self, byte):
        self._cmd[1] = byte
        self.i2c.writeto(self.addr, self._cmd)

    def init(self):
        """Power-on sequence; call once after the module has had power for a few ms."""
        ext = self.external_vcc
        for c in (
            _DISPLAY_OFF,
            _MEM_ADDR_MODE, 0x00,
            _START_LINE | 0x00,
            _SEG_REMAP_127,
            _MUX_RATIO, self.height - 1,
            _COM_SCAN_DEC,
            _DISPLAY_OFFSET, 0x00,
            # 0x12: alternative COM pin layout used by 128x64 panels; 128x32 ones are wired 0x02
            _COM_PINS, 0x12 if self.height == 64 else 0x02,
            _CLOCK_DIV, 0x80,
            _PRECHARGE, 0x22 if ext else 0xF1,
            _VCOM_DESEL, 0x30,        # ~0.83 x Vcc
            _SET_CONTRAST, 0xCF,
            _ENTIRE_ON_RESUME,
            _NORM_DISPLAY,
            _CHARGE_PUMP, 0x10 if ext else 0x14,   # internal charge pump unless Vcc is supplied
            _DISPLAY_ON,
        ):
            self.cmd(c)
        self.fb.fill(0)
        self.show()

    def show(self):
        # Address the full RAM window, then stream all pages in one transfer.
        self.cmd(_COL_ADDR)
        self.cmd(0)
        self.cmd(self.width - 1)
        self.cmd(_PAGE_ADDR)
        self.cmd(0)
        self.cmd(self.pages - 1)
        self.i2c.writevto(self.addr, self._vec)
