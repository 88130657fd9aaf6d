package main

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// printable returns s ready to print for people. Control characters (C0, DEL, C1),
// format characters that reorder or hide text (bidirectional overrides, zero-width
// ones), line and paragraph separators, and bytes that are not UTF-8 are escaped as Go
// escapes them in strings (\x1b, \r, \n, \u202e, \xff); every other character,
// unicode included, is kept. A name or an ID from the API can then neither move the
// cursor, colour the terminal nor fake a line of its own. Every command that prints
// such values to a terminal prints them through it.
func printable(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unicode.IsGraphic(r):
			b.WriteString(s[i : i+size])
		default:
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		}
		i += size
	}
	return b.String()
}
