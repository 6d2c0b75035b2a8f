package console

import (
	"fmt"
	"strings"
	"time"

	"github.com/keystep/keystep/flows"
)

// chartHours is how many hours the sign-in chart shows.
const chartHours = 24

// Outcomes of a sign-in, in the chart's stacking order.
const (
	outcomeApproved = iota
	outcomeDenied
	outcomeFraud
	outcomeExpired
	outcomeCancelled
	numOutcomes
)

// outcomeNames name the outcomes (and their CSS classes).
var outcomeNames = [numOutcomes]string{"approved", "denied", "fraud", "expired", "cancelled"}

// outcomeLabels are what the legend says.
var outcomeLabels = [numOutcomes]string{"approved", "denied", "reported as fraud", "expired", "cancelled"}

// outcomeOf maps an audit action to its outcome, or -1.
func outcomeOf(action string) int {
	switch action {
	case flows.AuditSignInApproved:
		return outcomeApproved
	case flows.AuditSignInDenied:
		return outcomeDenied
	case flows.AuditSignInFraud:
		return outcomeFraud
	case flows.AuditSignInExpired:
		return outcomeExpired
	case flows.AuditSignInCancelled:
		return outcomeCancelled
	}
	return -1
}

// Geometry of the chart (SVG user units).
const (
	chartW     = 760
	chartH     = 260
	chartLeft  = 44 // room for the y labels
	chartRight = 8
	chartTop   = 12
	chartBase  = 226 // the x axis; the hour labels go below
)

// chart is the sign-in chart, drawn: the template writes its shapes into
// an inline SVG (no script, no external library).
type chart struct {
	Start, End time.Time
	W, H       int
	Bars       []bar
	Grid       []gridLine
	Labels     []xLabel
	Legend     []legendItem
	Totals     [numOutcomes]int
	Total      int
	Hours      []hourRow // the same numbers as a table
	AxisX      [2]int    // x of the axis' ends
	Base       int
}

type bar struct {
	X, Y, W, H int
	Class      string
	Title      string
}

type gridLine struct {
	Y     int
	Label string
}

type xLabel struct {
	X     int
	Label string
}

type legendItem struct {
	Class, Label string
	Total        int
}

type hourRow struct {
	Hour   string
	Counts [numOutcomes]int
	Total  int
}

// drawChart lays out stacked bars of counts, one per hour from start.
func drawChart(start time.Time, counts [chartHours][numOutcomes]int) chart {
	c := chart{Start: start, End: start.Add(chartHours * time.Hour), W: chartW, H: chartH, Base: chartBase,
		AxisX: [2]int{chartLeft, chartW - chartRight}}
	peak := 0
	for h := range counts {
		sum := 0
		for o, n := range counts[h] {
			sum += n
			c.Totals[o] += n
		}
		c.Total += sum
		peak = max(peak, sum)
		c.Hours = append(c.Hours, hourRow{Hour: hourLabel(start, h), Counts: counts[h], Total: sum})
	}
	top := niceCeil(peak)
	plotH := chartBase - chartTop
	slot := (chartW - chartLeft - chartRight) / chartHours
	for i := 0; i <= 4; i++ {
		v := top * i / 4
		if i > 0 && v == top*(i-1)/4 {
			continue // small scales: no two lines with one label
		}
		c.Grid = append(c.Grid, gridLine{Y: chartBase - plotH*v/top, Label: fmt.Sprint(v)})
	}
	for h := range counts {
		x := chartLeft + h*slot + 2
		y := chartBase
		for o, n := range counts[h] {
			if n == 0 {
				continue
			}
			bh := max(1, plotH*n/top)
			y -= bh
			c.Bars = append(c.Bars, bar{X: x, Y: y, W: slot - 4, H: bh, Class: "o-" + outcomeNames[o],
				Title: fmt.Sprintf("%s: %d %s", hourLabel(start, h), n, outcomeLabels[o])})
		}
		if h%3 == 0 {
			c.Labels = append(c.Labels, xLabel{X: x + (slot-4)/2, Label: start.Add(time.Duration(h) * time.Hour).Format("15:04")})
		}
	}
	for o := range numOutcomes {
		c.Legend = append(c.Legend, legendItem{Class: "o-" + outcomeNames[o], Label: outcomeLabels[o], Total: c.Totals[o]})
	}
	return c
}

// hourLabel is "15:00–16:00" for hour h after start.
func hourLabel(start time.Time, h int) string {
	t := start.Add(time.Duration(h) * time.Hour)
	return t.Format("15:04") + "–" + t.Add(time.Hour).Format("15:04")
}

// niceCeil is the smallest of 4, 8, 20, 40, 80, 200… (a multiple of 4, so
// the grid's quarters are whole) at or above n.
func niceCeil(n int) int {
	for scale := 1; ; scale *= 10 {
		for _, m := range []int{4, 8, 20} {
			if m*scale >= n {
				return m * scale
			}
		}
	}
}

// qrSVG is a QR code drawn as one SVG path of dark modules.
type qrSVG struct {
	Size int
	Path string
}

// pathOf draws the dark cells of a bitmap as unit squares.
func pathOf(bitmap [][]bool) string {
	var b strings.Builder
	for y, row := range bitmap {
		for x, dark := range row {
			if dark {
				fmt.Fprintf(&b, "M%d %dh1v1h-1z", x, y)
			}
		}
	}
	return b.String()
}
