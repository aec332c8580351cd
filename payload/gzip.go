package payload

import (
	"encoding/binary"
	"io"
)

// IsGzip reports whether data starts with the gzip magic bytes (0x1f 0x8b).
func IsGzip(data []byte) bool {
	return len(data) >= 2 && data[0] == 0x1f && data[1] == 0x8b
}

// maxDeflateRatio bounds how much deflate can expand its input (a match
// of 258 bytes costs at least two bits: 1032 to 1), so a gzip trailer
// claiming more than that is not believed.
const maxDeflateRatio = 1032

// Gunzip appends the decompression of data to dst and returns it.
//
// Concatenated gzip members are decompressed one after the other, as gzip
// does. data must be gzip to its last byte: anything after the last member
// (trailing garbage, or the zero padding some writers add) is bad_gzip, as
// are a corrupt header or body, a wrong CRC or size, and truncated input;
// a record is relayed whole or not at all. Data that is not gzip (see
// IsGzip) is bad_gzip too.
//
// Output that would pass the Decoder's limit is decompressed_too_large:
// reading stops at limit+1 bytes, and dst never grows past the limit.
// On error Gunzip returns dst at its original length (its capacity
// possibly grown, for reuse) and an *Error.
func (d *Decoder) Gunzip(dst, data []byte) ([]byte, error) {
	start := len(dst)
	d.br.Reset(data)
	defer d.br.Reset(nil) // do not keep the caller's record
	if err := d.zr.Reset(&d.br); err != nil {
		return dst, &Error{Reason: ReasonBadGzip, Err: err}
	}
	if hint := sizeHint(data, d.max); cap(dst)-start < hint {
		dst = grow(dst, start+hint)
	}
	for {
		end := min(cap(dst), start+d.max)
		if len(dst) < end {
			n, err := d.zr.Read(dst[len(dst):end])
			dst = dst[:len(dst)+n]
			if err == io.EOF {
				return dst, nil
			}
			if err != nil {
				return dst[:start], &Error{Reason: ReasonBadGzip, Err: err}
			}
			continue
		}
		// dst is full: read a little on the side before growing it, so
		// that output of exactly its capacity (the common case, sized by
		// the trailer) never grows it, and output past the limit is
		// noticed at limit+1 bytes.
		produced := len(dst) - start
		p := d.probe[:min(len(d.probe), d.max-produced+1)]
		n, err := d.zr.Read(p)
		if n > 0 {
			if produced+n > d.max {
				return dst[:start], errorf(ReasonTooLarge, "decompressed data passes the limit of %d bytes", d.max)
			}
			// Doubling, but straight to the limit from past half of it,
			// allocates under twice the limit in all.
			next := max(2*produced, produced+n, 4096)
			if next > d.max/2 {
				next = d.max
			}
			dst = append(grow(dst, start+next), p[:n]...)
		}
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst[:start], &Error{Reason: ReasonBadGzip, Err: err}
		}
	}
}

// sizeHint is the capacity to start decompressing data with: the size its
// trailer states when believable and within limit, else a guess.
func sizeHint(data []byte, limit int) int {
	if len(data) >= 18 { // the smallest gzip member: 10 header, 2 body, 8 trailer
		size := int64(binary.LittleEndian.Uint32(data[len(data)-4:]))
		if size <= int64(limit) && size <= maxDeflateRatio*int64(len(data)) {
			return int(size)
		}
	}
	return min(limit, max(4*len(data), 4096))
}

// grow returns b with a capacity of exactly n (n >= len(b)).
func grow(b []byte, n int) []byte {
	if n <= cap(b) {
		return b
	}
	nb := make([]byte, len(b), n)
	copy(nb, b)
	return nb
}
