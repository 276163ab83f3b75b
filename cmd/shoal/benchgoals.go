package main

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
)

// goalCheck is one of the project's performance goals (issue 11) next to
// what a run measured. The bench reports it; nothing fails on it.
type goalCheck struct {
	Goal     string  `json:"goal"`
	Measured float64 `json:"measured"`
	Cmp      string  `json:"cmp"` // ">=" or "<="
	Target   float64 `json:"target"`
	Unit     string  `json:"unit,omitempty"`
	Met      bool    `json:"met"`
	Note     string  `json:"note,omitempty"` // why a figure within the target is not met
}

func newGoal(goal string, measured float64, cmp string, target float64, unit string) goalCheck {
	met := measured >= target
	if cmp == "<=" {
		met = measured <= target
	}
	return goalCheck{Goal: goal, Measured: measured, Cmp: cmp, Target: target, Unit: unit, Met: met}
}

// The goals, by what they measure.

// putGoals: embedded durable Put of 256 B against the raw group commit at
// the same writer count.
func putGoals(valueSize int, ratios []putRatio) []goalCheck {
	var out []goalCheck
	if valueSize != 256 {
		return nil
	}
	for _, r := range ratios {
		switch r.Writers {
		case 256:
			out = append(out, newGoal("embedded durable Put 256 B, 256 writers: shoal/raw", r.ShoalRaw, ">=", 0.5, ""))
		case 1:
			out = append(out, newGoal("embedded durable Put 256 B, 1 writer: shoal/raw", r.ShoalRaw, ">=", 0.9, ""))
		}
	}
	return out
}

// httpGoals: durable PUT over HTTP from 256 connections (closed loop)
// against the no-op net/http server under the same load.
func httpGoals(c *benchConfig, ratios map[string]float64) []goalCheck {
	v, ok := ratios["put"]
	if !ok || c.rate > 0 || c.conns != 256 {
		return nil
	}
	return []goalCheck{newGoal("HTTP durable PUT, 256 conns: shoal/no-op", v, ">=", 0.7, "")}
}

// clusterGoals: sustained rate and ack-to-visible-on-all p99 of real
// agents at an offered rate.
func clusterGoals(r *clusterReport) []goalCheck {
	var out []goalCheck
	at := fmt.Sprintf("%d agents, %s writes/s offered", r.Nodes, fmtCount(r.OfferedRate))
	// A latency is held to its goal at the offered rate only: one measured
	// while the writer fell behind is of a lighter load.
	p99 := func(target float64) goalCheck {
		g := newGoal(at+": ack→visible-on-all p99", r.Visible.P99, "<=", target, "ms")
		switch {
		case r.Visible.Count == 0:
			g.Met, g.Note = false, "no write measured"
		case !r.KeptUp:
			g.Met, g.Note = false, "the offered rate was not sustained"
		}
		return g
	}
	switch {
	case r.Nodes == 10 && r.OfferedRate == 5000:
		// "Sustained" allows 2% for the window's edges.
		out = append(out, newGoal(at+": sustained rate", r.AchievedRate, ">=", 0.98*r.OfferedRate, "/s"), p99(25))
	case r.Nodes == 10 && r.OfferedRate == 1000:
		out = append(out, p99(10))
	case r.Nodes == 3 && r.OfferedRate == 5000:
		out = append(out, p99(10))
	}
	return out
}

// printGoals prints goals as a table, each measure beside its goal.
func printGoals(w io.Writer, goals []goalCheck) error {
	if len(goals) == 0 {
		return nil
	}
	fmt.Fprintln(w, "goals:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, g := range goals {
		verdict := "met"
		if !g.Met {
			verdict = "NOT MET"
		}
		if g.Note != "" {
			verdict += " (" + g.Note + ")"
		}
		fmt.Fprintf(tw, "  %s\t%s%s\tgoal %s %s%s\t%s\n", g.Goal, fmtFigure(g.Measured), g.Unit, g.Cmp, fmtFigure(g.Target), g.Unit, verdict)
	}
	return tw.Flush()
}

// fmtFigure prints a figure with three significant digits or more:
// 0.43, 12.5, 248, 5,000.
func fmtFigure(v float64) string {
	switch a := math.Abs(v); {
	case a < 10:
		return strconv.FormatFloat(v, 'f', 2, 64)
	case a < 100:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return fmtCount(v)
}

// fmtCount prints v rounded, with thousands separators.
func fmtCount(v float64) string {
	s := strconv.FormatFloat(v, 'f', 0, 64)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
