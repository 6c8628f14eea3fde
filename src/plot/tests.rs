use super::*;

fn decode(png: &[u8]) -> image::RgbImage {
    image::load_from_memory(png).expect("a valid PNG").to_rgb8()
}

/// Pixels of exactly `colour`.
fn count(img: &image::RgbImage, colour: [u8; 3]) -> usize {
    img.pixels().filter(|p| p.0 == colour).count()
}

/// Horizontal extent (max x - min x + 1) of the pixels of exactly `colour`; 0 if none.
fn extent_x(img: &image::RgbImage, colour: [u8; 3]) -> u32 {
    let xs = img.enumerate_pixels().filter(|(_, _, p)| p.0 == colour).map(|(x, _, _)| x);
    let (lo, hi) = xs.fold((u32::MAX, 0), |(lo, hi), x| (lo.min(x), hi.max(x)));
    if lo > hi { 0 } else { hi - lo + 1 }
}

/// Whether the SVG has a `<text>` element reading exactly `text`.
fn has_text(svg: &str, text: &str) -> bool {
    svg.split("</text>").any(|part| part.rsplit_once('>').is_some_and(|(_, t)| t.trim() == text))
}

/// Dark (text-coloured) pixels in rows `y0..y1`.
fn dark_in_rows(img: &image::RgbImage, y0: u32, y1: u32) -> usize {
    img.enumerate_pixels().filter(|(_, y, p)| (y0..y1).contains(y) && p.0.iter().all(|&c| c < 110)).count()
}

#[test]
fn png_has_the_requested_size_and_title_text_from_the_embedded_font() {
    let chart =
        training_curves("lenet", &[1.0, 2.0, 3.0], &[2.0, 1.0, 0.5], &[0.3, 0.6, 0.8], &[0.4, 0.7, 0.85]);
    let img = decode(&chart.png(320, 200).unwrap());
    assert_eq!(img.dimensions(), (320, 200));
    assert!(dark_in_rows(&img, 0, 30) > 20, "no title text drawn");
    let untitled = LineChart { title: String::new(), ..chart };
    let img = decode(&untitled.png(320, 200).unwrap());
    assert_eq!(dark_in_rows(&img, 0, 6), 0, "something dark above the plot without a title");
}

#[test]
fn text_is_antialiased_glyphs_not_blocks() {
    let chart = LineChart { title: "Accuracy".into(), ..Default::default() };
    let img = decode(&chart.png(200, 100).unwrap());
    // Rasterized outlines have intermediate greys at their edges.
    let grey = img.enumerate_pixels().filter(|(_, y, p)| *y < 34 && p.0[0] > 60 && p.0[0] < 200).count();
    assert!(grey > 10, "title has no anti-aliased edge pixels");
}

#[test]
fn a_single_point_series_is_drawn_as_a_marker() {
    let colour = [200, 10, 10];
    let chart = LineChart {
        series: vec![Series { color: Some(colour), ..Series::new("", vec![(1.0, 0.8)]) }],
        ..Default::default()
    };
    let img = decode(&chart.png(200, 160).unwrap());
    assert!(count(&img, colour) >= 9, "the single point left no marker");
    assert!(chart.svg(200, 160).unwrap().contains("<circle"));
}

#[test]
fn many_points_get_lines_without_markers_and_a_legend() {
    let pts: Vec<(f64, f64)> = (0..100).map(|i| (i as f64, (i as f64 / 10.0).sin())).collect();
    let chart = LineChart { series: vec![Series::new("sine", pts)], ..Default::default() };
    let svg = chart.svg(400, 300).unwrap();
    assert!(!svg.contains("<circle"));
    assert!(has_text(&svg, "sine"), "no legend entry");
}

#[test]
fn log_axes_drop_non_positive_points_and_render() {
    let chart = LineChart {
        series: vec![Series::new("loss", vec![(1e-5, 2.3), (1e-3, 0.0), (1e-1, 0.4), (1.0, 9.0)])],
        log_x: true,
        log_y: true,
        ..Default::default()
    };
    let svg = chart.svg(400, 300).unwrap();
    assert!(has_text(&svg, "1e-5") && has_text(&svg, "0.01"), "no decade ticks");
    assert_eq!(decode(&chart.png(400, 300).unwrap()).dimensions(), (400, 300));
}

#[test]
fn log_bars_give_the_smallest_of_four_decades_a_visible_bar() {
    let labels: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
    let chart = BarChart::new("params", labels, vec![3e4, 2e5, 5e6, 1e8]);
    assert!(chart.log_scale, "values over 4 decades should pick a log scale");
    let img = decode(&chart.png(400, 200).unwrap());
    assert!(extent_x(&img, PALETTE[0]) >= 20, "smallest bar is {} px wide", extent_x(&img, PALETTE[0]));
    let linear = BarChart { log_scale: false, ..chart };
    let img = decode(&linear.png(400, 200).unwrap());
    assert!(extent_x(&img, PALETTE[0]) <= 2, "on a linear axis it should be (nearly) invisible");
}

#[test]
fn a_short_log_axis_labels_only_one_two_and_five_of_each_decade() {
    let chart =
        BarChart { log_scale: true, ..BarChart::new("p", vec!["a".into(), "b".into()], vec![1.5e6, 4.0e7]) };
    let svg = chart.svg(700, 200).unwrap();
    assert!(has_text(&svg, "2M") && has_text(&svg, "5M") && has_text(&svg, "10M"), "{svg}");
    assert!(!has_text(&svg, "3M") && !has_text(&svg, "7M"), "crowded ticks are labelled");
}

#[test]
fn bar_values_are_printed_and_lengths_must_match() {
    let chart = BarChart::new("acc", vec!["x".into(), "y".into()], vec![0.5, 0.912]);
    assert!(!chart.log_scale);
    let svg = chart.svg(400, 150).unwrap();
    assert!(has_text(&svg, "0.912") && has_text(&svg, "0.5"));
    let bad = BarChart::new("acc", vec!["x".into()], vec![0.5, 0.9]);
    assert!(bad.png(400, 150).is_err());
}

#[test]
fn heatmap_renders_to_size_with_the_colour_scale_ends() {
    let values = vec![vec![0.0, 1.0, 2.0], vec![3.0, 4.0, 5.0]];
    let chart = Heatmap { title: "m".into(), values, annotate: true, ..Default::default() };
    let (w, h) = chart.size();
    let img = decode(&chart.png(w, h).unwrap());
    assert_eq!(img.dimensions(), (w, h));
    assert!(count(&img, [68, 1, 84]) > 100, "no cell at the scale's low end");
    assert!(count(&img, [253, 231, 37]) > 100, "no cell at the scale's high end");
    assert!(has_text(&chart.svg(w, h).unwrap(), "4"), "values not annotated");
    let ragged = Heatmap { values: vec![vec![1.0], vec![1.0, 2.0]], ..Default::default() };
    assert!(ragged.png(200, 200).is_err());
}

#[test]
fn image_grid_renders_to_size_and_scales_the_images() {
    let red = GridImage::rgb("red", 2, 2, [1.0; 4].into_iter().chain([0.0; 8]).collect());
    let check = GridImage::grey("check", 2, 2, vec![0.0, 1.0, 1.0, 0.0]);
    let grid = ImageGrid::new("grid", vec![red, check], 2);
    let img = decode(&grid.png(300, 180).unwrap());
    assert_eq!(img.dimensions(), (300, 180));
    assert!(count(&img, [255, 0, 0]) > 400, "the red image is not drawn scaled up");
    assert!(count(&img, [0, 0, 0]) > 400, "the checkerboard's black squares are missing");
    let bad = GridImage { channels: 2, ..GridImage::grey("bad", 2, 2, vec![0.0; 8]) };
    assert!(ImageGrid::new("", vec![bad], 1).png(100, 100).is_err());
}

#[test]
fn sizes_out_of_range_are_errors() {
    let chart = LineChart::default();
    assert!(chart.png(0, 100).is_err());
    assert!(chart.svg(100, 100_000).is_err());
}

#[test]
fn svg_text_is_escaped_and_names_the_font_family() {
    let chart = LineChart { title: "a < b & c".into(), ..Default::default() };
    let svg = chart.svg(300, 200).unwrap();
    assert!(svg.contains("a &lt; b &amp; c"));
    assert!(svg.contains("font-family=\"sans-serif\""));
}

#[test]
fn compact_and_tick_labels() {
    assert_eq!(compact(61_706.0), "61.7K");
    assert_eq!(compact(128_806_154.0), "129M");
    assert_eq!(compact(1_992_166.0), "1.99M");
    assert_eq!(compact(2.5e9), "2.5G");
    assert_eq!(compact(512.0), "512");
    assert_eq!(compact(0.912), "0.912");
    assert_eq!(compact(1.5e-4), "1.5e-4");
    assert_eq!(tick_label(0.30000000000000004), "0.3");
    assert_eq!(tick_label(1e-5), "1e-5");
    assert_eq!(tick_label(1e6), "1M");
    assert_eq!(tick_label(0.0), "0");
}

#[test]
fn log_scale_is_wanted_beyond_two_orders_of_magnitude() {
    assert!(wants_log(&[61_706.0, 128_806_154.0]));
    assert!(!wants_log(&[0.0, 0.5, 0.9]));
    assert!(!wants_log(&[]));
}

#[test]
fn training_curves_start_at_zero_and_dash_train_accuracy() {
    let chart = training_curves("m", &[1.0], &[2.3], &[0.1], &[0.2]);
    assert_eq!(chart.series.len(), 3);
    assert!(chart.series[1].dashed && !chart.series[0].dashed);
    assert_eq!(chart.y_range.map(|r| r.0), Some(0.0));
    assert!(chart.y_range.unwrap().1 >= 2.3);
}
