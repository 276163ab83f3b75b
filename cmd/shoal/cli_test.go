package main

import (
	"regexp"
	"strings"
	"testing"
)

// TestCLIOutputsExact pins, byte for byte, the outputs the CLI builds from
// the client's values rather than printing the server's answer (events,
// siblings, key lists, a register holding null, a map with set fields, a
// value as typed), as the CLI printed them when it had its own HTTP client.
func TestCLIOutputsExact(t *testing.T) {
	a := startAgent(t, t.TempDir())
	sh := func(args ...string) string { t.Helper(); return mustShoal(t, append(args, "--addr", a.URL())...) }
	sh("put", "nul", "null")
	sh("put", "html", `<a href="x">&</a>`)
	sh("put", "big", "123456789012345678901234567890")
	sh("incr", "hits", "6")
	sh("add", "tags", "b", "a")
	sh("remove", "tags", "a", "b")
	sh("patch", "doc", "--set", "title=Hello", "--add", "tags=x", "--enable", "pinned")
	sh("patch", "doc", `{"nested":{"sub":{"add":{"s":["q"]},"set":{"n":null}}}}`)
	sh("put", "gone", "1")
	sh("del", "gone")
	replica := regexp.MustCompile(`"replica":"([0-9a-f]{16})"`).FindStringSubmatch(sh("status", "-o", "json"))[1]

	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"get", "nul", "-o", "json"}, `{"key":"nul","type":"register","value":null}` + "\n"},
		{[]string{"get", "nul"}, "null\n"},
		{[]string{"get", "html", "-o", "json"}, `{"key":"html","type":"register","value":"\u003ca href=\"x\"\u003e\u0026\u003c/a\u003e"}` + "\n"},
		{[]string{"get", "big"}, "1.2345678901234568e+29\n"},
		{[]string{"get", "doc"}, "{\n  \"pinned\": true,\n  \"sub\": {\n    \"n\": null,\n    \"s\": [\n      \"q\"\n    ]\n  },\n  \"tags\": [\n    \"x\"\n  ],\n  \"title\": \"Hello\"\n}\n"},
		{[]string{"keys", "zzz", "-o", "json"}, `{"keys":[]}` + "\n"},
		{[]string{"keys", "h"}, "hits  counter\nhtml  register\n"},
		{[]string{"watch", "--from", "0", "--count", "7"}, "0\tregister\tnul\t\n1\tregister\thtml\t<a href=\"x\">&</a>\n" +
			"2\tregister\tbig\t1.2345678901234568e+29\n3\tcounter\thits\t6\n5\tdel\ttags\n" +
			"7\tmap\tdoc\t{\"pinned\":true,\"sub\":{\"n\":null,\"s\":[\"q\"]},\"tags\":[\"x\"],\"title\":\"Hello\"}\n9\tdel\tgone\n"},
		{[]string{"watch", "--from", "0", "--count", "7", "-o", "json"}, `{"key":"nul","type":"register","origin":"R","offset":0}
{"key":"html","type":"register","value":"\u003ca href=\"x\"\u003e\u0026\u003c/a\u003e","origin":"R","offset":1}
{"key":"big","type":"register","value":1.2345678901234568e+29,"origin":"R","offset":2}
{"key":"hits","type":"counter","value":6,"origin":"R","offset":3}
{"key":"tags","deleted":true,"origin":"R","offset":5}
{"key":"doc","type":"map","value":{"pinned":true,"sub":{"n":null,"s":["q"]},"tags":["x"],"title":"Hello"},"origin":"R","offset":7}
{"key":"gone","deleted":true,"origin":"R","offset":9}
`},
		// Writes last: the replays above show each key's latest change.
		{[]string{"put", "-o", "json", "j", `{"b":1, "a":2}`}, `{"key":"j","type":"register","value":{"b":1,"a":2}}` + "\n"},
		{[]string{"incr", "hits", "0", "-o", "json"}, `{"key":"hits","type":"counter","value":6}` + "\n"},
		{[]string{"watch", "--after", "5", "--count", "1"}, "7\tmap\tdoc\t{\"pinned\":true,\"sub\":{\"n\":null,\"s\":[\"q\"]},\"tags\":[\"x\"],\"title\":\"Hello\"}\n"},
	} {
		want := strings.ReplaceAll(tt.want, `"origin":"R"`, `"origin":"`+replica+`"`)
		if got := sh(tt.args...); got != want {
			t.Errorf("shoal %q:\n got %q\nwant %q", tt.args, got, want)
		}
	}
	sib := sh("get", "html", "--siblings", "-o", "json")
	if !regexp.MustCompile(`^\{"key":"html","type":"register","value":"\\u003ca href=\\"x\\"\\u003e\\u0026\\u003c/a\\u003e","siblings":\[\{"value":"\\u003ca href=\\"x\\"\\u003e\\u0026\\u003c/a\\u003e","origin":"` +
		replica + `","time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"\}\]\}\n$`).MatchString(sib) {
		t.Errorf("get --siblings -o json: %q", sib)
	}
	r := runShoal(t, nil, "", "watch", "--after", "abc", "--addr", a.URL())
	if r.code != 1 || r.err != "Error: bad request: Last-Event-ID \"abc\" is not a WAL offset\n" {
		t.Errorf("watch --after abc: %+v", r)
	}
}
