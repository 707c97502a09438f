// Command chart draws make bench's charts from its results.json, as SVG
// beside PNG: latency CDFs per handler (latency.*), PSS per pod against
// live pods (memory.*), each headline ratio to runc against its target
// (targets.*).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
)

// results is what the charts read of integration/bench's results.json.
type results struct {
	Date         string                          `json:"date"`
	Pods         int                             `json:"pods"`
	HandlerOrder []string                        `json:"handler_order"`
	Ratio        map[string]map[string]float64   `json:"ratio"`
	Targets      []verdict                       `json:"targets"`
	Samples      map[string]map[string][]float64 `json:"samples"`
	FloorSamples map[string][]float64            `json:"floor_samples"`
	Memory       map[string][][2]float64         `json:"memory_by_pods"`
}

type verdict struct {
	Handler string  `json:"handler"`
	Key     string  `json:"key"`
	Ratio   float64 `json:"ratio"`
	Max     float64 `json:"max"`
	Known   bool    `json:"known"`
	Met     bool    `json:"met"`
}

// palette gives each handler its colour in every chart.
var palette = []color.Color{
	color.RGBA{R: 0xc0, G: 0x39, B: 0x2b, A: 0xff}, // runc
	color.RGBA{R: 0x24, G: 0x71, B: 0xa3, A: 0xff}, // pause
	color.RGBA{R: 0x1e, G: 0x84, B: 0x49, A: 0xff}, // pause-dense
	color.RGBA{R: 0x8e, G: 0x44, B: 0xad, A: 0xff},
}

var floorColor = color.Gray{Y: 0x60}

func (r *results) color(handler string) color.Color {
	for i, h := range r.HandlerOrder {
		if h == handler {
			return palette[i%len(palette)]
		}
	}
	return color.Black
}

func main() {
	dir := flag.String("in", "_output/bench", "directory of results.json; the charts are written there")
	flag.Parse()
	if err := run(*dir); err != nil {
		fmt.Fprintln(os.Stderr, "chart:", err)
		os.Exit(1)
	}
}

func run(dir string) error {
	data, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		return err
	}
	var r results
	if err := json.Unmarshal(data, &r); err != nil {
		return fmt.Errorf("results.json: %w", err)
	}
	if len(r.HandlerOrder) == 0 {
		return fmt.Errorf("results.json names no handlers (handler_order): written by an older bench?")
	}
	for name, chart := range map[string]func(*results) (figure, error){
		"latency": latencyFigure, "memory": memoryFigure, "targets": targetsFigure,
	} {
		f, err := chart(&r)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if err := f.save(filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	fmt.Printf("chart: %s/{latency,memory,targets}.{svg,png}\n", dir)
	return nil
}
