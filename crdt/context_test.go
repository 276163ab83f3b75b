package crdt

import (
	"slices"
	"testing"

	"pgregory.net/rapid"
)

func TestReplicaIDString(t *testing.T) {
	for _, id := range []ReplicaID{0, 1, 0xabc, 1<<64 - 1} {
		s := id.String()
		if len(s) != 16 {
			t.Fatalf("%d: %q is not 16 digits", id, s)
		}
		back, err := ParseReplicaID(s)
		if err != nil || back != id {
			t.Fatalf("%q: %v, %v", s, back, err)
		}
	}
	for _, bad := range []string{"", "xyz", "12345678901234567", "-1", "+1"} {
		if _, err := ParseReplicaID(bad); err == nil {
			t.Errorf("ParseReplicaID(%q) accepted", bad)
		}
	}
}

func TestParseType(t *testing.T) {
	for _, tp := range []Type{TypeRegister, TypeCounter, TypeSet, TypeMap, TypeFlag} {
		if got, err := ParseType(tp.String()); err != nil || got != tp {
			t.Fatalf("%v: %v, %v", tp, got, err)
		}
	}
	if _, err := ParseType("list"); err == nil {
		t.Fatal("unknown type accepted")
	}
}

func TestVersionVector(t *testing.T) {
	v := VersionVector{1: 3, 2: 0}
	o := VersionVector{1: 2, 3: 5}
	if !v.Contains(Dot{1, 3}) || v.Contains(Dot{1, 4}) || v.Contains(Dot{1, 0}) {
		t.Fatal("Contains")
	}
	if !v.Equal(VersionVector{1: 3}) || v.Equal(o) {
		t.Fatal("Equal must ignore zero entries and compare the rest")
	}
	c := v.Clone()
	c.Merge(o)
	if !c.Equal(VersionVector{1: 3, 3: 5}) || v.Get(3) != 0 {
		t.Fatalf("Merge: %v (original %v)", c, v)
	}
	if got := c.Sorted(); !slices.Equal(got, []Dot{{1, 3}, {3, 5}}) {
		t.Fatalf("Sorted: %v", got)
	}
}

func TestContextTable(t *testing.T) {
	var c Context
	for _, d := range []Dot{{1, 3}, {1, 1}, {2, 2}, {1, 2}, {1, 5}, {1, 3}, {1, 0}} {
		c.Add(d)
	}
	want := Context{VV: VersionVector{1: 3}, Cloud: []Dot{{1, 5}, {2, 2}}}
	if !c.Equal(&want) {
		t.Fatalf("Add: %+v, want %+v", c, want)
	}
	o := Context{VV: VersionVector{1: 4, 2: 1, 3: 2}, Cloud: []Dot{{3, 7}}}
	got := c.Missing(&o)
	wantMissing := []DotRange{{1, 4, 4}, {2, 1, 1}, {3, 1, 2}, {3, 7, 7}}
	if !slices.Equal(got, wantMissing) {
		t.Fatalf("Missing: %v, want %v", got, wantMissing)
	}
	c.Merge(&o)
	want = Context{VV: VersionVector{1: 5, 2: 2, 3: 2}, Cloud: []Dot{{3, 7}}}
	if !c.Equal(&want) {
		t.Fatalf("Merge: %+v, want %+v", c, want)
	}
	if m := c.Missing(&o); len(m) != 0 {
		t.Fatalf("nothing should be missing after a merge: %v", m)
	}
}

// genContext draws a canonical context over few replicas and seqs.
func genContext(t *rapid.T, label string) *Context {
	var c Context
	for _, d := range rapid.SliceOfN(rapid.Custom(func(t *rapid.T) Dot {
		return Dot{ReplicaID(rapid.IntRange(1, 3).Draw(t, "r")), uint64(rapid.IntRange(1, 12).Draw(t, "s"))}
	}), 0, 20).Draw(t, label) {
		c.Add(d)
	}
	return &c
}

func dotsOf(c *Context) map[Dot]bool {
	m := map[Dot]bool{}
	for r := ReplicaID(1); r <= 3; r++ {
		for s := uint64(1); s <= 12; s++ {
			if c.Contains(Dot{r, s}) {
				m[Dot{r, s}] = true
			}
		}
	}
	return m
}

func canonicalOK(t *rapid.T, c *Context) {
	t.Helper()
	n := normalized(c)
	if !n.Equal(c) || canonical(c) != c {
		t.Fatalf("not canonical: %+v (normalized %+v)", c, n)
	}
}

func TestContextProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a, b := genContext(t, "a"), genContext(t, "b")
		canonicalOK(t, a)
		da, db := dotsOf(a), dotsOf(b)
		// Missing names exactly the dots b has and a lacks.
		want := map[Dot]bool{}
		for d := range db {
			if !da[d] {
				want[d] = true
			}
		}
		got := map[Dot]bool{}
		for _, r := range a.Missing(b) {
			for s := r.First; s <= r.Last; s++ {
				got[Dot{r.Replica, s}] = true
			}
		}
		if len(got) != len(want) {
			t.Fatalf("Missing = %v, want %v", got, want)
		}
		for d := range want {
			if !got[d] {
				t.Fatalf("Missing lacks %v", d)
			}
		}
		// Merge is the union, stays canonical, and is a join.
		m := a.Clone()
		m.Merge(b)
		canonicalOK(t, m)
		for d := range da {
			if !m.Contains(d) {
				t.Fatalf("merge lost %v", d)
			}
		}
		for d := range db {
			if !m.Contains(d) {
				t.Fatalf("merge lost %v", d)
			}
		}
		if len(dotsOf(m)) != len(da)+len(want) {
			t.Fatal("merge invented dots")
		}
		m2 := b.Clone()
		m2.Merge(a)
		if !m.Equal(m2) {
			t.Fatalf("merge not commutative: %+v vs %+v", m, m2)
		}
		// Covers, intersect and ranges agree with the dot sets.
		if m.Covers(a) != true || a.Covers(b) != (len(want) == 0) {
			t.Fatal("Covers")
		}
		in := a.intersect(b)
		canonicalOK(t, in)
		for d := range dotsOf(in) {
			if !da[d] || !db[d] {
				t.Fatalf("intersect holds %v", d)
			}
		}
		var fromRanges Context
		for _, r := range a.ranges() {
			fromRanges.addRange(r.Replica, r.First, r.Last)
		}
		if !fromRanges.Equal(a) {
			t.Fatalf("ranges round trip: %+v vs %+v", fromRanges, a)
		}
	})
}

func TestNormalizeAnyShape(t *testing.T) {
	c := Context{VV: VersionVector{1: 0, 2: 2}, Cloud: []Dot{{2, 5}, {2, 3}, {2, 1}, {0, 0}, {2, 5}, {1, 1}}}
	c.Normalize()
	want := Context{VV: VersionVector{1: 1, 2: 3}, Cloud: []Dot{{2, 5}}}
	if !c.Equal(&want) {
		t.Fatalf("Normalize: %+v, want %+v", c, want)
	}
}

func FuzzParseReplicaID(f *testing.F) {
	f.Add("00000000000000ff")
	f.Add("zz")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseReplicaID(s)
		if err != nil {
			return
		}
		back, err := ParseReplicaID(id.String())
		if err != nil || back != id {
			t.Fatalf("%q -> %v -> %q -> %v, %v", s, id, id.String(), back, err)
		}
	})
}
