package payload

import (
	"encoding/binary"
	"math/bits"
)

// MaxJSONDepth is how deep ValidJSON follows nested objects and arrays.
const MaxJSONDepth = 1024

// ValidJSON reports whether data is one JSON value (RFC 8259, whitespace
// around it allowed), nested at most MaxJSONDepth deep. It reads data once,
// without recursion (no input can exhaust the stack) and without
// allocating. It is the check a record's data passes before routing or
// filtering reads its fields, so its string scan, where most bytes are,
// looks at 8 bytes at a time.
func ValidJSON(data []byte) bool {
	var objects [MaxJSONDepth / 8]byte // bit d: the container at depth d is an object
	depth := 0
	i := skipWS(data, 0)
	for {
		// A value starts at i.
		if i >= len(data) {
			return false
		}
		switch c := data[i]; c {
		case '{', '[':
			if depth == MaxJSONDepth {
				return false
			}
			if c == '{' {
				objects[depth>>3] |= 1 << (depth & 7)
			} else {
				objects[depth>>3] &^= 1 << (depth & 7)
			}
			depth++
			i = skipWS(data, i+1)
			if i < len(data) && (data[i] == '}' && c == '{' || data[i] == ']' && c == '[') {
				depth--
				i++
				break
			}
			if c == '{' {
				if i = member(data, i); i < 0 {
					return false
				}
			}
			continue // the first member's or element's value
		case '"':
			if i = stringEnd(data, i); i < 0 {
				return false
			}
		case 't':
			if i = literalEnd(data, i, "true"); i < 0 {
				return false
			}
		case 'f':
			if i = literalEnd(data, i, "false"); i < 0 {
				return false
			}
		case 'n':
			if i = literalEnd(data, i, "null"); i < 0 {
				return false
			}
		default:
			if i = numberEnd(data, i); i < 0 {
				return false
			}
		}
		// A value ended at i: close containers until one goes on.
		for {
			i = skipWS(data, i)
			if depth == 0 {
				return i == len(data)
			}
			if i >= len(data) {
				return false
			}
			object := objects[(depth-1)>>3]&(1<<((depth-1)&7)) != 0
			c := data[i]
			if c == '}' && object || c == ']' && !object {
				depth--
				i++
				continue
			}
			if c != ',' {
				return false
			}
			i = skipWS(data, i+1)
			if object {
				if i = member(data, i); i < 0 {
					return false
				}
			}
			break
		}
	}
}

// member reads an object member's key and colon at i and returns where
// its value starts, or -1.
func member(data []byte, i int) int {
	if i >= len(data) || data[i] != '"' {
		return -1
	}
	if i = stringEnd(data, i); i < 0 {
		return -1
	}
	i = skipWS(data, i)
	if i >= len(data) || data[i] != ':' {
		return -1
	}
	return skipWS(data, i+1)
}

func skipWS(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

const (
	lows  = 0x0101010101010101
	highs = 0x8080808080808080
)

// stringEnd returns the index after the string whose quote is at i, or -1.
func stringEnd(data []byte, i int) int {
	i++
	for {
		// Eight bytes at a time while none is a quote, a backslash or a
		// control character (bytes of 0x80 and above are UTF-8, plain).
		for i+8 <= len(data) {
			w := binary.LittleEndian.Uint64(data[i:])
			q, bs := w^(lows*'"'), w^(lows*'\\')
			stop := ((q - lows) &^ q) | ((bs - lows) &^ bs) | ((w - lows*0x20) &^ w)
			if stop &= highs; stop != 0 {
				i += bits.TrailingZeros64(stop) >> 3
				break
			}
			i += 8
		}
		if i >= len(data) {
			return -1
		}
		switch c := data[i]; {
		case c == '"':
			return i + 1
		case c == '\\':
			if i+1 >= len(data) {
				return -1
			}
			switch data[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if hex4(data[i+2:]) < 0 {
					return -1
				}
				i += 6
			default:
				return -1
			}
		case c < 0x20:
			return -1
		default:
			i++
		}
	}
}

func literalEnd(data []byte, i int, word string) int {
	if len(data)-i >= len(word) && string(data[i:i+len(word)]) == word {
		return i + len(word)
	}
	return -1
}

// numberEnd returns the index after the number at i, or -1: -?int frac? exp?
func numberEnd(data []byte, i int) int {
	if i < len(data) && data[i] == '-' {
		i++
	}
	switch {
	case i < len(data) && data[i] == '0':
		i++
	case i < len(data) && data[i] >= '1' && data[i] <= '9':
		i = digits(data, i)
	default:
		return -1
	}
	if i < len(data) && data[i] == '.' {
		j := digits(data, i+1)
		if j == i+1 {
			return -1
		}
		i = j
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		j := digits(data, i)
		if j == i {
			return -1
		}
		i = j
	}
	return i
}
