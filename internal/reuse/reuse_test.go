package reuse

import "testing"

func TestFitShrinksAfterOutsizedEvents(t *testing.T) {
	var u Use
	small := make([]byte, 0, KeepBytes)
	for range 2 * ShrinkAfter {
		if got := Fit(&u, small, 0); cap(got) != KeepBytes {
			t.Fatal("a buffer of KeepBytes was dropped")
		}
	}
	big := make([]byte, 0, 4*KeepBytes)
	if got := Fit(&u, big, KeepBytes+1); got == nil {
		t.Fatal("a buffer a quarter used was dropped")
	}
	for i := range ShrinkAfter - 1 {
		if Fit(&u, big, 10) == nil {
			t.Fatalf("dropped after %d small events, want %d", i+1, ShrinkAfter)
		}
	}
	if Fit(&u, big, 3*KeepBytes) == nil {
		t.Fatal("dropped when this event needed most of it")
	}
	for range ShrinkAfter - 1 {
		Fit(&u, big, 10)
	}
	if Fit(&u, big, 10) != nil {
		t.Fatalf("kept after %d small events in a row", ShrinkAfter)
	}
}
