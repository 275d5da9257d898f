package matcher

import (
	_ "embed"

	"github.com/redis/go-redis/v9"
)

//go:embed lua/write.lua
var writeSrc string

// writeScript is the only script: the fenced write (see lua/write.lua).
var writeScript = redis.NewScript(writeSrc)
