// Command leadconv converts and merges duplicate CRM leads in real time.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "leadconv: not wired yet")
	os.Exit(2)
}
