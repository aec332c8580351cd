package efostream

import (
	"encoding/binary"
	"hash/crc32"
)

// frame is the part of an event-stream message the fast path needs.
type frame struct {
	messageType, eventType string
	payload                []byte
}

// Header value types of the event-stream format.
const (
	hdrTrue = iota
	hdrFalse
	hdrByte
	hdrInt16
	hdrInt32
	hdrInt64
	hdrBytes
	hdrString
	hdrTimestamp
	hdrUUID
)

// parseFrame parses a whole frame read by readFrame. ok is false for
// anything the fast path leaves to the SDK's decoder: a bad checksum,
// malformed or repeated headers, or :message-type or :event-type that are
// not strings.
func parseFrame(b []byte) (f frame, ok bool) {
	if len(b) < minMessageLen {
		return f, false
	}
	total := binary.BigEndian.Uint32(b[0:4])
	hlen := binary.BigEndian.Uint32(b[4:8])
	if int(total) != len(b) || uint64(hlen)+minMessageLen > uint64(total) {
		return f, false
	}
	if crc32.ChecksumIEEE(b[:len(b)-frameCRCLength]) != binary.BigEndian.Uint32(b[len(b)-frameCRCLength:]) {
		return f, false
	}
	h := b[preludeLen : preludeLen+int(hlen)]
	var haveMsg, haveEvent bool
	for len(h) > 0 {
		nl := int(h[0])
		if len(h) < 1+nl+1 {
			return f, false
		}
		name := h[1 : 1+nl]
		typ := h[1+nl]
		h = h[2+nl:]
		var size int
		switch typ {
		case hdrTrue, hdrFalse:
		case hdrByte:
			size = 1
		case hdrInt16:
			size = 2
		case hdrInt32:
			size = 4
		case hdrInt64, hdrTimestamp:
			size = 8
		case hdrUUID:
			size = 16
		case hdrBytes, hdrString:
			if len(h) < 2 {
				return f, false
			}
			size = 2 + int(binary.BigEndian.Uint16(h))
		default:
			return f, false
		}
		if len(h) < size {
			return f, false
		}
		v := h[:size]
		h = h[size:]
		switch string(name) {
		case ":message-type":
			if typ != hdrString || haveMsg {
				return f, false
			}
			haveMsg, f.messageType = true, string(v[2:])
		case ":event-type":
			if typ != hdrString || haveEvent {
				return f, false
			}
			haveEvent, f.eventType = true, string(v[2:])
		}
	}
	f.payload = b[preludeLen+int(hlen) : len(b)-frameCRCLength]
	return f, haveMsg && haveEvent
}
