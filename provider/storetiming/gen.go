//go:build ignore

// gen writes tx_methods.go (go generate ./provider/storetiming/).
package main

import (
	"log"
	"os"

	"github.com/keystep/keystep/provider/storetiming/internal/txgen"
)

func main() {
	src, err := txgen.Generate()
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile("tx_methods.go", src, 0o644); err != nil {
		log.Fatal(err)
	}
}
