"""Prints the prime numbers below the limit given as first argument."""
import sys

limit = int(sys.argv[1]) if len(sys.argv) > 1 else 50
sieve = [True] * limit
primes = []
for n in range(2, limit):
    if sieve[n]:
        primes.append(n)
        for multiple in range(n * n, limit, n):
            sieve[multiple] = False
print(f"{len(primes)} primes below {limit}:")
print(" ".join(map(str, primes)))
sys.exit(0 if primes else 1)
