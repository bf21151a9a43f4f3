# Throughput vs. key count, one panel per workload, one line per impl.
# Usage: gnuplot -e "datafile='plot.dat'; outfile='throughput.png'" plot.gp
# plot.dat (written by portreg-bench --csv-dir): one block per panel, each
# with a "# title" line, a header "keys impl..." and one row per key count.
if (!exists("datafile")) datafile = 'build/release/bench/plot.dat'
if (!exists("outfile")) outfile = 'throughput.png'

set terminal pngcairo size 1500,950 font ",10"
set output outfile
set datafile missing "NaN"
set logscale x
set logscale y
set xtics ("1k" 1000, "10k" 10000, "100k" 100000, "1M" 1000000)
set xrange [700:1400000]
set grid
set key outside right top vertical font ",9"
set xlabel "ids in the table"
set ylabel "lookups/s, millions (2 readers)"

titles = "'read-only, all ids present' 'read-only, all ids absent' 'read-mostly (1 writer re-registering)' 'churn (1 writer untracking / re-tracking)' 'insert-heavy (1 writer adding new ids)' 'read-mostly: writes/s of the writer'"
if (!exists("ncols")) ncols = 10

# One distinct colour per implementation column (gnuplot's default cycle
# has eight); portreg, the first, is drawn thicker.
colors = "#9400d3 #009e73 #56b4e9 #e69f00 #f0e442 #0072b2 #e51e10 #000000 #8c564b #999999"
do for [i=1:10] { set linetype i lc rgb word(colors, i) pt i }

set multiplot layout 2,3 title "portreg-bench: throughput vs. key count (medians)"
do for [b=0:5] {
    set title word(titles, b + 1) noenhanced
    if (b == 5) { set ylabel "writes/s, millions" }
    plot for [c=2:ncols] datafile index b using 1:c with linespoints lt (c - 1) \
         lw (c == 2 ? 3 : 1.5) title columnheader(c) noenhanced
}
unset multiplot
