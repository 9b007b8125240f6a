namespace EdgeViT.Capture;

/// <summary>
/// Cuts a byte stream of concatenated JPEG images (rpicam-vid --codec mjpeg, ffmpeg -f mjpeg) into frames by
/// walking the JPEG markers: segment lengths up to the scan, then the entropy-coded data up to the next marker
/// (0xFF followed by anything but 0x00 or RSTn), until EOI. An embedded EXIF thumbnail's EOI is inside a segment
/// and is skipped. Bytes before an SOI are ignored. The parse position survives short reads, so each byte is
/// looked at once; buffers grow to the largest frame and are then reused.
/// </summary>
public sealed class JpegStreamSplitter
{
    private byte[] _buf = new byte[256 * 1024];
    private int _start, _end; // unconsumed bytes [_start, _end)
    private int _pos;         // parse position inside the current frame (absolute index), 0 = no SOI seen yet
    private bool _inScan;

    /// <summary>Total bytes skipped before SOI markers (garbage or partial frames at start).</summary>
    public long SkippedBytes { get; private set; }

    /// <summary>
    /// Reads the next complete JPEG into <paramref name="frame"/> (Encoded). Returns false at a clean end of the
    /// stream; throws <see cref="EndOfStreamException"/> when it ends inside a frame (the bytes read so far are
    /// reported in the message).
    /// </summary>
    public async ValueTask<bool> ReadAsync(Stream stream, Frame frame, CancellationToken ct)
    {
        while (true)
        {
            int length = TryCut();
            if (length > 0)
            {
                frame.EnsureCapacity(length);
                _buf.AsSpan(_start, length).CopyTo(frame.Buffer);
                frame.Length = length;
                frame.Format = FrameFormat.Encoded;
                _start += length;
                _pos = 0;
                _inScan = false;
                return true;
            }
            // Need more bytes: compact, grow when a frame fills the buffer, then read.
            if (_start > 0 && (_end == _buf.Length || _start > _buf.Length / 2))
            {
                int shift = _start;
                Buffer.BlockCopy(_buf, _start, _buf, 0, _end - _start);
                _end -= shift;
                if (_pos > 0) _pos -= shift;
                _start = 0;
            }
            if (_end == _buf.Length) Array.Resize(ref _buf, _buf.Length * 2);
            int n = await stream.ReadAsync(_buf.AsMemory(_end), ct).ConfigureAwait(false);
            if (n == 0)
            {
                int pending = _end - _start;
                _start = _end = _pos = 0;
                _inScan = false;
                if (pending == 0) return false;
                throw new EndOfStreamException($"stream ended inside a JPEG frame ({pending} bytes of it)");
            }
            _end += n;
        }
    }

    /// <summary>Length of a complete JPEG at _start, or 0 when more bytes are needed.</summary>
    private int TryCut()
    {
        var b = _buf;
        if (_pos == 0)
        {
            // find SOI
            int i = _start;
            while (i + 1 < _end && !(b[i] == 0xFF && b[i + 1] == 0xD8)) i++;
            SkippedBytes += i - _start;
            _start = i;
            if (i + 1 >= _end) return 0;
            _pos = i + 2;
        }
        while (true)
        {
            if (_inScan)
            {
                int p = _pos;
                while (p + 1 < _end && !(b[p] == 0xFF && b[p + 1] != 0x00 && (b[p + 1] < 0xD0 || b[p + 1] > 0xD7))) p++;
                _pos = p;
                if (p + 1 >= _end) return 0;
                _inScan = false; // at a marker
            }
            if (_pos + 1 >= _end) return 0;
            if (b[_pos] != 0xFF) { _pos++; continue; } // tolerate stray bytes between segments
            byte m = b[_pos + 1];
            if (m == 0xFF) { _pos++; continue; } // fill byte
            if (m == 0xD9) return _pos + 2 - _start;
            if (m == 0x01 || (m >= 0xD0 && m <= 0xD7) || m == 0xD8) { _pos += 2; continue; }
            if (_pos + 3 >= _end) return 0;
            int segment = (b[_pos + 2] << 8) | b[_pos + 3];
            if (segment < 2) { _pos += 2; continue; } // corrupt length: resync on the next marker
            if (_pos + 2 + segment > _end) return 0;
            _pos += 2 + segment;
            if (m == 0xDA) _inScan = true;
        }
    }
}
