// Key material for the NATS authentication tests, made at test time:
//
//	natstool bcrypt PASSWORD    a $2a$ bcrypt hash (as nats-server's config holds)
//	natstool nkey               a user NKey pair: public key, then seed
//	natstool sign SEED NONCE    the seed's signature over the nonce (base64 URL, unpadded)
package main

import (
	"encoding/base64"
	"fmt"
	"os"

	"github.com/nats-io/nkeys"
	"golang.org/x/crypto/bcrypt"
)

func die(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

func main() {
	if len(os.Args) < 2 {
		die(fmt.Errorf("usage: natstool bcrypt|nkey|sign ..."))
	}
	switch os.Args[1] {
	case "bcrypt":
		h, err := bcrypt.GenerateFromPassword([]byte(os.Args[2]), bcrypt.MinCost)
		if err != nil {
			die(err)
		}
		fmt.Println(string(h))
	case "nkey":
		kp, err := nkeys.CreateUser()
		if err != nil {
			die(err)
		}
		pub, _ := kp.PublicKey()
		seed, _ := kp.Seed()
		fmt.Println(pub)
		fmt.Println(string(seed))
	case "sign":
		kp, err := nkeys.FromSeed([]byte(os.Args[2]))
		if err != nil {
			die(err)
		}
		sig, err := kp.Sign([]byte(os.Args[3]))
		if err != nil {
			die(err)
		}
		fmt.Println(base64.RawURLEncoding.EncodeToString(sig))
	default:
		die(fmt.Errorf("unknown command %s", os.Args[1]))
	}
}
