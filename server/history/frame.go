package history

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/msgbus/msgbus/server/message"
)

// A segment file is a sequence of frames, each
//
//	[u32 length n][u32 CRC-32C][n bytes of payload]
//
// little-endian, the CRC taken over the four length bytes and then the
// payload, so a damaged length is caught as surely as a damaged payload.
// A zero length ends the segment: the rest of a preallocated file reads as
// zeros. The payload's first byte says what it holds:
//
//	'M' a message: its id (16 bytes, appendKey), then its encoding
//	    (appendRecord)
//	'K' a mark: formatVersion, then three ids (16 bytes each): the newest
//	    id ever appended, the newest ever evicted ("lost") and the oldest
//	    still retained ("keep": every message before it was evicted)
//
// Each segment starts with a mark, and every commit ends with one, so the
// newest segment alone says where ids go on and what a resume from an old
// id can no longer recover, whatever older segments were deleted.
const (
	frameHeader = 8
	kindMessage = 'M'
	kindMark    = 'K'
	markLen     = 1 + 1 + 3*16
	// maxFrame bounds a frame's length, so a damaged length is not taken
	// for a frame running to the end of a large file.
	maxFrame = 1 << 30
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// mark is what each commit writes after its messages.
type mark struct {
	last message.ID // the newest id appended
	lost message.ID // the newest id evicted: resumes from before it are not recovered
	keep message.ID // every message before it was evicted
}

// merge makes k the newest of k and o, field by field.
func (k *mark) merge(o mark) {
	for _, p := range [...]struct{ dst, src *message.ID }{{&k.last, &o.last}, {&k.lost, &o.lost}, {&k.keep, &o.keep}} {
		if p.dst.Less(*p.src) {
			*p.dst = *p.src
		}
	}
}

// frameLen is the length on disk of m's frame.
func frameLen(m *message.Message) int { return frameHeader + 1 + 16 + encodedLen(m) }

// appendFrame appends a frame whose payload fill appends to b.
func appendFrame(b []byte, fill func([]byte) []byte) []byte {
	at := len(b)
	b = append(b, make([]byte, frameHeader)...)
	b = fill(b)
	binary.LittleEndian.PutUint32(b[at:], uint32(len(b)-at-frameHeader))
	crc := crc32.Update(0, castagnoli, b[at:at+4])
	binary.LittleEndian.PutUint32(b[at+4:], crc32.Update(crc, castagnoli, b[at+frameHeader:]))
	return b
}

func appendMessageFrame(b []byte, m *message.Message) []byte {
	return appendFrame(b, func(b []byte) []byte {
		b = append(b, kindMessage)
		b = appendKey(b, m.ID)
		return appendRecord(b, m)
	})
}

func appendMarkFrame(b []byte, k mark) []byte {
	return appendFrame(b, func(b []byte) []byte {
		b = append(b, kindMark, formatVersion)
		b = appendKey(b, k.last)
		b = appendKey(b, k.lost)
		return appendKey(b, k.keep)
	})
}

// A frame error says where in a segment reading stopped and why.
type frameError struct {
	off int64
	err error
}

func (e *frameError) Error() string { return fmt.Sprintf("offset %d: %v", e.off, e.err) }
func (e *frameError) Unwrap() error { return e.err }

var (
	errChecksum = errors.New("checksum mismatch")
	errLength   = errors.New("frame length past the end of the file")
	errTrailing = errors.New("data after the end marker")
	errKind     = errors.New("unknown frame kind")
)

// scanFrames reads the frames of data, a segment's content, calling
// message and mark for each. It returns the offset where the frames end
// (a zero length, or the end of data) and, if it stopped short of that, a
// *frameError: a bad checksum, a length past the end, a payload it cannot
// decode, or (strict) bytes other than zero after the end marker. The
// caller decides whether that is a torn tail or damage.
func scanFrames(data []byte, strict bool, message func(*message.Message), mark func(mark)) (int64, error) {
	end, err := readFrames(bytes.NewReader(data), int64(len(data)), message, mark)
	if err == nil && strict {
		if i := bytes.IndexFunc(data[end:], func(r rune) bool { return r != 0 }); i >= 0 {
			return end, &frameError{end + int64(i), errTrailing}
		}
	}
	return end, err
}

// readFrames reads frames from r, which holds size bytes, as scanFrames
// does, but only up to the end of the frames: the zeros a preallocated
// segment ends in are not read. An error that is not a *frameError is
// the reader's.
func readFrames(r io.Reader, size int64, message func(*message.Message), mark func(mark)) (int64, error) {
	br := bufio.NewReaderSize(r, 256<<10)
	var hdr [frameHeader]byte
	var payload []byte
	off := int64(0)
	for {
		k, err := io.ReadFull(br, hdr[:])
		switch {
		case err == io.EOF:
			return off, nil
		case err == io.ErrUnexpectedEOF:
			if bytes.Count(hdr[:k], []byte{0}) == k {
				return off, nil // zeros to the end
			}
			return off, &frameError{off, errLength}
		case err != nil:
			return off, err
		}
		n := binary.LittleEndian.Uint32(hdr[:])
		if n == 0 {
			return off, nil
		}
		if n > maxFrame || int64(n) > size-off-frameHeader {
			return off, &frameError{off, errLength}
		}
		if cap(payload) < int(n) {
			payload = make([]byte, n, max(int(n), 2*cap(payload)))
		}
		payload = payload[:n]
		if _, err := io.ReadFull(br, payload); err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return off, &frameError{off, errLength} // shorter than it said
			}
			return off, err
		}
		crc := crc32.Update(0, castagnoli, hdr[:4])
		if crc32.Update(crc, castagnoli, payload) != binary.LittleEndian.Uint32(hdr[4:]) {
			return off, &frameError{off, errChecksum}
		}
		if err := decodeFrame(payload, message, mark); err != nil {
			return off, &frameError{off, err}
		}
		off += frameHeader + int64(n)
	}
}

func decodeFrame(p []byte, message func(*message.Message), mk func(mark)) error {
	switch p[0] {
	case kindMessage:
		if len(p) < 17 {
			return errRecord
		}
		m, err := decode(p[1:17], p[17:])
		if err != nil {
			return err
		}
		message(m)
	case kindMark:
		if len(p) != markLen || p[1] != formatVersion {
			return fmt.Errorf("unknown mark format %x", p[:min(len(p), 2)])
		}
		var k mark
		k.last, _ = decodeKey(p[2:18])
		k.lost, _ = decodeKey(p[18:34])
		k.keep, _ = decodeKey(p[34:50])
		mk(k)
	default:
		return errKind
	}
	return nil
}
