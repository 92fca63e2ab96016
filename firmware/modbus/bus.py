# The RS485 bus: every transaction on the UART, one at a time, for every user of the bus (meters,
# Modbus wallboxes). A user's request runs its transaction in the user's task while holding the
# bus lock (FIFO), so requests never overlap on the wire. (No owner task: a task, two events and
# the handover cost heap and gained nothing, asyncio being cooperative.)
#
# UART interface (firmware/board/unix_uart.py: the raw file; firmware/board/rs485_uart.py):
#   uart.write(buf)        send the whole buffer (a memoryview of the request frame)
#   uart.readinto(buf)     non-blocking: bytes available now, 0 (or None) when none
#   uart.close()
#   optional uart.finish_tx(): a driver-enable port (ESP32) sends in two steps: write() switches
#                          the driver on and queues the frame, finish_tx() waits for the last
#                          stop bit and releases the driver (the bus sleeps through the frame
#                          in between)
# open_uart() returns such an object or raises OSError; the bus opens lazily and retries later,
# so a missing adapter or pty is an error on the requests, never a crash.
#
# Timing is wire time: give the bus a real-time clock (firmware.clock.Clock()), not the scaled
# simulation clock.
import asyncio
from array import array
from time import ticks_add as _ticks_add, ticks_diff as _ticks_diff
from micropython import const

from firmware.modbus import rtu


# Errors raised by the requests. All derive from ModbusError, so a poller that only cares "did it
# work" catches one class. Classes (not codes) because their names are what meter and charger
# states show as last_error ("ModbusTimeout slave 1: no answer"). Here, not in a module of their
# own: whoever catches them uses the bus anyway (a module costs heap).
class ModbusError(Exception):
    pass


class ModbusTimeout(ModbusError):
    """No answer within the response timeout (after all retries)."""


class ModbusCrcError(ModbusError):
    """An answer arrived but its CRC was wrong (after all retries)."""


class ModbusFrameError(ModbusError):
    """Bytes arrived but no complete, valid answer among them (truncated or garbled)."""


class ModbusException(ModbusError):
    """The slave answered with an exception response; `code` is the Modbus exception code
    (1 illegal function, 2 illegal data address, 3 illegal data value, 4 device failure, ...),
    set by the bus (no __init__ of its own: a method costs heap)."""


class ModbusPortError(ModbusError):
    """The serial port could not be opened or written (the bus retries opening it later)."""


_RX_SIZE = const(512)     # two maximal frames: the answer plus garbage in front of it
_CHUNK = const(64)
_REOPEN_MS = const(2000)  # how often a port that failed to open is tried again
_COUNT_MAX = const(0x3FFFFFFF)  # the counters restart from 0 at this total (ESP32 small int)
_TX_BLOCK_MS = const(2)   # the end of a frame is waited for blocking (driver-enable timing)

# Outcomes of one attempt.
_OK = const(0)
_TIMEOUT = const(1)
_CRC = const(2)
_FRAME = const(3)
_EXC = const(4)
_PORT = const(5)   # the serial port could not be opened or failed


# Counters of one slave id (a list, indexed by these; reported as a dict by stats()).
_STAT_KEYS = ("requests", "ok", "timeouts", "crc_errors", "frame_errors", "exceptions",
              "last_exception", "retries")
_S_REQUESTS = const(0)
_S_OK = const(1)
_S_TIMEOUTS = const(2)
_S_CRC = const(3)
_S_FRAME = const(4)
_S_EXCEPTIONS = const(5)
_S_LAST_EXCEPTION = const(6)
_S_RETRIES = const(7)


class ModbusBus:
    """Modbus RTU master on one UART.

    baud/bits_per_char give the character and 3.5-character times (bits_per_char: 10 for 8N1,
    11 for 8E1/8O1/8N2). timeout_ms is the response timeout, counted from the end of the request
    plus the wire time of the expected answer. retries: extra attempts after a timeout, CRC or
    frame error (an exception answer is final). gap_ms: minimum silence between the end of one
    transaction and the next request (never below the 3.5-character time)."""

    def __init__(self, open_uart, clock, baud=9600, bits_per_char=10, timeout_ms=300, retries=1,
                 gap_ms=5):
        self._open_uart = open_uart
        self.clock = clock
        self._uart = None
        self._finish_tx = None
        self._reopen = False
        self._open_failed_ms = None
        self.port_error = None
        self._tx = bytearray(rtu.MAX_FRAME)
        self._rx = bytearray(_RX_SIZE)
        self._chunk = bytearray(_CHUNK)
        self._regs = array("H", bytes(2 * rtu.MAX_READ_REGS))
        self._views = {}      # register count -> view of _regs (the read results)
        self._tx_views = {}   # frame length -> view of _tx (what is written)
        self._stats = {}
        self._lock = asyncio.Lock()
        self._exc_code = 0
        self._idle_at = clock.ticks_ms()
        self.transactions = 0
        self.configure(baud, bits_per_char, timeout_ms, retries, gap_ms)

    def configure(self, baud, bits_per_char, timeout_ms, retries, gap_ms, open_uart=None):
        """Change settings; a new open_uart (new baud/pins) closes the port, the next request
        reopens it. Safe at any time (asyncio is cooperative: a transaction only yields on its
        own state)."""
        self.baud = baud
        self.bits_per_char = bits_per_char
        self.timeout_ms = timeout_ms
        self.retries = retries
        self.gap_ms = gap_ms
        self._char_us = rtu.char_time_us(self.baud, self.bits_per_char)
        # Frame-end silence in whole ms, rounded up (the clock has ms resolution).
        self._silence_ms = (rtu.frame_gap_us(self.baud, self.bits_per_char) + 999) // 1000 + 1
        if open_uart is not None:
            # Applied before the next transaction, never in the middle of one.
            self._open_uart = open_uart
            self._reopen = True

    def stats(self, slave):
        """Counters of one slave id as a dict: requests, ok, timeouts, crc_errors, frame_errors,
        exceptions, last_exception, retries."""
        s = self._stats.get(slave)
        if s is None:
            s = self._stats[slave] = [0] * 8
        return dict(zip(_STAT_KEYS, s))

    def to_dict(self):
        """rs485/state: port status and the counters of every slave id."""
        slaves = {}
        for k in sorted(self._stats):   # a loop, not a comprehension: one function less
            slaves[str(k)] = self.stats(k)
        return {"port_open": self._uart is not None, "port_error": self.port_error,
                "transactions": self.transactions, "slaves": slaves}

    # ---- public requests (any task) -------------------------------------------------------

    async def read_input(self, slave, addr, count, fc=rtu.FC_READ_INPUT):
        """Function 04 (fc 3: read_holding). Returns the registers as a memoryview of unsigned
        16-bit ints: a buffer owned by the bus, valid until the caller's next await (decode it
        before awaiting)."""
        if not 1 <= count <= rtu.MAX_READ_REGS:
            raise ValueError("reads take 1..%d registers" % rtu.MAX_READ_REGS)
        await self._submit(slave, fc, addr, count, None)
        v = self._views.get(count)
        if v is None:
            v = self._views[count] = memoryview(self._regs)[:count]
        return v

    async def read_holding(self, slave, addr, count):
        """Function 03. Same result contract as read_input()."""
        return await self.read_input(slave, addr, count, rtu.FC_READ_HOLDING)

    async def write_single(self, slave, addr, value):
        """Function 06: write one register (0..65535)."""
        await self._submit(slave, rtu.FC_WRITE_SINGLE, addr, value & 0xFFFF, None)

    async def write_multiple(self, slave, addr, values):
        """Function 16: write len(values) consecutive registers."""
        n = len(values)
        if not 1 <= n <= rtu.MAX_WRITE_REGS:
            raise ValueError("write_multiple takes 1..%d registers" % rtu.MAX_WRITE_REGS)
        await self._submit(slave, rtu.FC_WRITE_MULTIPLE, addr, n, values)

    # ---- internals --------------------------------------------------------------------------

    async def _submit(self, slave, fc, addr, count, values):
        # count: registers to read or write, or the value of a 06 write.
        if not 0 <= slave <= 247:
            raise ValueError("slave id must be 0..247")
        if addr < 0 or addr + (1 if fc == rtu.FC_WRITE_SINGLE else count) > 0x10000:
            raise ValueError("register address out of range")
        await self._lock.acquire()
        try:
            # The request buffer is only touched under the lock.
            n = rtu.build_request(self._tx, slave, fc, addr, count, values)
            try:
                r = await self._transact(n, slave, fc, count)
            except Exception as e:  # noqa: BLE001 - a failing port is an error on the request
                self.port_error = "%s" % (e,)
                u = self._uart
                self._uart = None
                try:
                    u.close()
                except Exception:  # noqa: BLE001 - closing a dead port
                    pass
                r = _PORT
            except BaseException:
                # The caller was cancelled mid-transaction (e.g. a wallbox task on a config
                # change): its answer may still come. Keep the line quiet for a response timeout
                # before the next request instead of talking into it.
                self._idle_at = _ticks_add(self.clock.ticks_ms(), self.timeout_ms)
                raise
            if r == _OK:
                return
            if r == _EXC:
                e = ModbusException("Modbus exception %d" % self._exc_code)
                e.code = self._exc_code
                raise e
            if r == _TIMEOUT:
                raise ModbusTimeout("slave %d: no answer" % slave)
            if r == _CRC:
                raise ModbusCrcError("slave %d: bad CRC" % slave)
            if r == _FRAME:
                raise ModbusFrameError("slave %d: garbled or truncated answer" % slave)
            raise ModbusPortError(self.port_error or "serial port unavailable")
        finally:
            self._lock.release()

    async def _transact(self, tx_len, slave, fc, count):
        if self._reopen:
            self._reopen = False
            u = self._uart
            self._uart = None
            self._open_failed_ms = None
            if u is not None:
                try:
                    u.close()
                except Exception:  # noqa: BLE001 - closing a dead port
                    pass
        if self._uart is None:
            now = self.clock.ticks_ms()
            # (0 <=: a failure more than 6.2 days ago reads as negative; the port is tried)
            if self._open_failed_ms is not None and \
                    0 <= _ticks_diff(now, self._open_failed_ms) < _REOPEN_MS:
                return _PORT
            try:
                self._uart = self._open_uart()
                # Ports with a driver-enable pin send in two steps (write/finish_tx).
                self._finish_tx = getattr(self._uart, "finish_tx", None)
                self.port_error = None
                self._open_failed_ms = None
            except Exception as e:  # noqa: BLE001 - OSError, bad path, ...
                self.port_error = "cannot open serial port: %s" % (e,)
                self._open_failed_ms = now
                return _PORT
        if self.transactions >= _COUNT_MAX:
            # Every counter restarts from 0 together (their ratios stay right) before the total
            # leaves the small ints: on the ESP32 each count would be a new heap object then.
            self.transactions = 0
            for st in self._stats.values():
                for i in range(8):
                    if i != _S_LAST_EXCEPTION:
                        st[i] = 0
        st = self._stats.get(slave)
        if st is None:
            st = self._stats[slave] = [0] * 8
        st[_S_REQUESTS] += 1
        self.transactions += 1
        result = _TIMEOUT
        late = False  # an attempt timed out: its answer may still come after this transaction
        for attempt in range(self.retries + 1):
            if attempt:
                st[_S_RETRIES] += 1
            clock = self.clock
            gap = max(self.gap_ms, self._silence_ms)
            wait = gap - _ticks_diff(clock.ticks_ms(), self._idle_at)
            # _idle_at is at most timeout_ms ahead (a late answer's quiet time). A longer wait
            # is a stamp from before a silence of over 6.2 days, which ticks_diff() reads as
            # ahead: the line has been quiet for long, nothing to wait for.
            if 0 < wait <= gap + self.timeout_ms:
                await clock.sleep_ms(wait)
            uart = self._uart
            # Stray bytes between frames are not part of the answer. Bounded: a line streaming
            # garbage must not keep the event loop here.
            for _ in range(16):
                if not uart.readinto(self._chunk):
                    break
            # A view per frame length, made once: steady-state requests allocate nothing.
            tx = self._tx_views.get(tx_len)
            if tx is None:
                tx = self._tx_views[tx_len] = memoryview(self._tx)[:tx_len]
            uart.write(tx)
            finish = self._finish_tx
            if finish is not None:
                # Half-duplex port (ESP32): sleep through the frame's wire time, block only for
                # its last ms or two, so the driver is released right after the last stop bit.
                try:
                    wire_ms = tx_len * self._char_us // 1000
                    if wire_ms > _TX_BLOCK_MS:
                        await clock.sleep_ms(wire_ms - _TX_BLOCK_MS)
                finally:
                    finish()
            if slave == 0:  # broadcast: nobody answers
                self._idle_at = clock.ticks_ms()
                st[_S_OK] += 1
                return _OK
            result = await self._receive(slave, fc, count)
            self._idle_at = self.clock.ticks_ms()
            if result == _TIMEOUT:
                late = True
            if late and (result == _OK or result == _EXC or attempt == self.retries):
                # The transaction ends, an answer may still be on its way: RTU answers carry no
                # request id, so the next request (another register of the same size) would
                # take the late answer, or the answer to a retry the late one served, for its
                # own. The line stays quiet for a response timeout first; what comes meanwhile
                # is dropped before the next request. (A retry goes out at once: an answer to
                # the same request is a right answer.)
                self._idle_at = _ticks_add(self._idle_at, self.timeout_ms)
            if result == _OK:
                st[_S_OK] += 1
                return _OK
            if result == _EXC:
                st[_S_EXCEPTIONS] += 1
                st[_S_LAST_EXCEPTION] = self._exc_code
                return _EXC
            if result == _TIMEOUT:
                st[_S_TIMEOUTS] += 1
            elif result == _CRC:
                st[_S_CRC] += 1
            else:
                st[_S_FRAME] += 1
        return result

    async def _receive(self, slave, fc, count):
        """Collect bytes until the answer is found, or the timeout; classify the failure."""
        clock = self.clock
        uart = self._uart
        rx = self._rx
        chunk = self._chunk
        want = 5 + 2 * count if fc == rtu.FC_READ_HOLDING or fc == rtu.FC_READ_INPUT else 8
        start = clock.ticks_ms()
        limit_ms = self.timeout_ms + (want * self._char_us + 999) // 1000
        last_rx = start
        n = 0
        r = rtu.NEED_MORE
        while True:
            k = uart.readinto(chunk)
            now = clock.ticks_ms()
            if k:
                if n + k > _RX_SIZE:
                    # Flooded with garbage: keep the newest bytes, an answer is at the end.
                    keep = _RX_SIZE // 2
                    src = n - keep
                    for i in range(keep):
                        rx[i] = rx[src + i]
                    n = keep
                for i in range(k):
                    rx[n + i] = chunk[i]
                n += k
                last_rx = now
                r = rtu.scan(rx, n, slave, fc, count, self._tx)
                if r >= 0:  # the answer starts at r
                    if rx[r + 1] & 0x80:
                        self._exc_code = rx[r + 2]
                        return _EXC
                    if fc == rtu.FC_READ_HOLDING or fc == rtu.FC_READ_INPUT:
                        rtu.decode_registers(rx, r, count, self._regs)
                    return _OK
                if _ticks_diff(now, start) < limit_ms:
                    # More may be waiting right now: read on, but let the other tasks run (a
                    # line that never falls silent, noise or a second master, must neither
                    # stall the event loop nor keep the request past its timeout).
                    await clock.sleep_ms(0)
                    continue
            if r == rtu.BAD_CRC and _ticks_diff(now, last_rx) >= self._silence_ms:
                return _CRC  # a complete answer with a bad CRC, and the line went quiet
            if _ticks_diff(now, start) >= limit_ms:
                if n == 0:
                    return _TIMEOUT
                return _FRAME if r == rtu.NEED_MORE else _CRC
            await clock.sleep_ms(1)



def app_bus(app):
    """The app's bus (firmware/modbus/install.py get_bus): settings from rs485/config, kept in
    step with it; the UART from the board."""
    from firmware.clock import Clock
    # Wire timing needs real time even when the simulation clock runs faster.
    bus = ModbusBus(None, Clock())
    board = app.board

    def apply(c):
        # bits per character: start + 8 data + parity + stop bits. A new opener on every change
        # reopens the port: the next open reads the settings as they are then.
        bus.configure(baud=c["baud"], bits_per_char=9 + (1 if c["parity"] else 0) + c["stop_bits"],
                      timeout_ms=c["timeout_ms"], retries=c["retries"], gap_ms=c["gap_ms"],
                      open_uart=lambda: board.uart(c))
    apply(app.modbus_config)
    app.modbus_config.subscribe(apply)
    app.registry.add("rs485/state", (ModbusBus.to_dict, bus))  # a registry read tuple
    return bus
