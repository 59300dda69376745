# A Perl job: only provider C offers the perl runtime, standing for a
# provider's own runtime. Counts the words of its arguments.
use strict;
use warnings;
my %seen;
$seen{lc $_}++ for map { split /\s+/ } @ARGV;
printf "%-8s %d\n", $_, $seen{$_} for sort keys %seen;
printf "perl %vd\n", $^V;
