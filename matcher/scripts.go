package matcher

import (
	_ "embed"

	"github.com/redis/go-redis/v9"
)

var (
	//go:embed lua/read.lua
	readSrc string
	//go:embed lua/apply.lua
	applySrc string
	//go:embed lua/account.lua
	accountSrc string

	readScript    = redis.NewScript(readSrc)
	applyScript   = redis.NewScript(applySrc)
	accountScript = redis.NewScript(accountSrc)
)
